"""`mlfn runtime build|publish --flavour lambda|gpu`: the shared runtime base image every model image extends."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..console import CliError, info, result


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("runtime", help="build or publish the runtime base image (lambda or gpu flavour)")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build the base into a local OCI layout (<MLFN_HOME or .mlfn>/images/base-*)")
    b.add_argument("--flavour", choices=["lambda", "gpu"], default="lambda")
    b.add_argument("--builder", choices=["auto", "docker", "buildah", "debootstrap"], default="auto",
                   help="auto: Docker when an engine answers, else the offline debootstrap base")
    b.add_argument("--from", dest="from_image", help="FROM image for docker/buildah (default: the Dockerfile's)")
    b.add_argument("--mirror", default=None, help="Debian mirror for debootstrap (default: deb.debian.org)")
    b.add_argument("--out", help="OCI layout folder to write (default: <MLFN_HOME or .mlfn>/images/base-FLAVOUR)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=run_build)
    pub = sub.add_parser("publish", help="push the local base and write its descriptor for builds elsewhere")
    pub.add_argument("--flavour", choices=["lambda", "gpu"], default="lambda")
    pub.add_argument("--to", default="ecr:mlfn-runtime",
                     help="destination as in `mlfn push --to` (default: ECR repository mlfn-runtime)")
    pub.add_argument("--tag", help="tag (default: FLAVOUR-VERSION)")
    pub.add_argument("--descriptor", help="where to write the descriptor JSON (default: next to the local base)")
    pub.add_argument("--plain-http", action="store_true")
    pub.add_argument("--json", action="store_true")
    pub.set_defaults(handler=run_publish)


def run_build(args: argparse.Namespace) -> int:
    from ..packaging import base as bases
    from ..packaging import dockerfile_build, offline_base
    from ..packaging.oci import Layout
    from ..packaging.own_files import OwnFileError

    builder = args.builder
    if builder == "auto":
        builder = "docker" if dockerfile_build.docker_available() else "debootstrap"
    out = Path(args.out) if args.out else bases.local_base_dir(args.flavour)
    ref = bases.base_ref(args.flavour)
    info(f"building runtime base {ref} with {builder} into {out}")
    started = time.perf_counter()
    try:
        if builder == "debootstrap":
            offline_base.build_offline_base(args.flavour, out, say=info, ref=ref,
                                            cache=bases.mlfn_home() / "cache",
                                            mirror=args.mirror or offline_base.DEFAULT_MIRROR)
        else:
            if builder == "docker" and not dockerfile_build.docker_available():
                raise CliError("no Docker engine answers here: use --builder buildah or --builder debootstrap")
            if builder == "buildah" and not dockerfile_build.buildah_available():
                raise CliError("buildah is not installed: run .ci/setup-images.sh")
            dockerfile_build.build(builder, args.flavour, out, ref, say=info, from_image=args.from_image)
    except (offline_base.OfflineBuildError, OwnFileError) as exc:
        raise CliError(str(exc)) from None
    image, _ = Layout(out).resolve(ref)
    layers = [{"digest": d.digest, "size": d.size} for d in image.layers]
    total = sum(d.size for d in image.layers)
    info(f"base {ref}: {len(layers)} layers, {total / 1e6:.1f} MB compressed, in {time.perf_counter() - started:.0f}s")
    payload = {"ref": ref, "digest": image.digest, "layout": str(out), "builder": builder, "layers": layers,
               "compressed_bytes": total, "seconds": round(time.perf_counter() - started, 1)}
    result(payload, args.json, image.digest)
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from mlfn.runtime import __version__

    from ..packaging import base as bases
    from ..packaging.oci import Layout, LayoutError
    from ..packaging.source import PushError, PushSource
    from .push import push_image

    folder = bases.local_base_dir(args.flavour)
    ref = bases.base_ref(args.flavour)
    try:
        source = PushSource.from_layout(folder, ref)
    except LayoutError as exc:
        raise CliError(f"{exc}: run `mlfn runtime build --flavour {args.flavour}` first") from None
    args.tag = args.tag or f"{args.flavour}-{__version__}"
    try:
        report = push_image(args, source, "runtime", *_modules(), lambda_pulls=False)
    except PushError as exc:
        raise CliError(str(exc)) from None
    descriptor = Path(args.descriptor) if args.descriptor else folder.parent / f"base-{args.flavour}.json"
    bases.write_descriptor(descriptor, Layout(folder).resolve(ref)[0], report.reference, args.flavour)
    info(f"published {report.reference}; descriptor written to {descriptor} (builds with this MLFN_HOME use it; "
         f"pass it as --base elsewhere, or ship it in mlfn's sources as runtime_layer/images/base-{args.flavour}.json)")
    result({**report.to_json(), "descriptor": str(descriptor)}, args.json, report.reference)
    return 0


def _modules() -> tuple[Any, Any]:
    from ..packaging import ecr, registry

    return ecr, registry
