"""`mlfn push SOURCE [--to DEST]`: send a model image to Amazon ECR (ECR API) or any OCI registry (HTTP API)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..console import CliError, info, result

HELP_TO = ("where to: 'ecr' (default: repository mlfn-<name> in the session's account and region), "
           "'ecr:REPOSITORY', ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY, or HOST[:PORT]/REPOSITORY "
           "for any OCI registry (plain HTTP on loopback)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("push", help="push a model image to ECR or an OCI registry (only missing layers)")
    p.add_argument("source", help="a model directory (built first) or an OCI layout folder (FOLDER or FOLDER:REF)")
    p.add_argument("--to", default="ecr", help=HELP_TO)
    p.add_argument("--tag", help="tag to set (default: the tag in --to, else latest)")
    p.add_argument("--base", help="runtime base when SOURCE is a model directory (see `mlfn build --base`)")
    p.add_argument("--plain-http", action="store_true", help="talk plain HTTP to a non-loopback registry")
    p.add_argument("--json", action="store_true", help="print what was uploaded and skipped as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..packaging import ecr, registry
    from ..packaging.oci import LayoutError
    from ..packaging.source import PushError

    try:
        source, name = _source(args)
        report = push_image(args, source, name, ecr, registry)
    except (PushError, LayoutError) as exc:
        raise CliError(str(exc)) from None
    sent = len(report.uploaded)
    info(f"pushed {report.reference}: {sent} blob(s) uploaded ({report.bytes_uploaded / 1e6:.2f} MB), "
         f"{len(report.skipped)} already there, {len(report.mounted)} mounted, in {report.seconds:.1f}s")
    result(report.to_json(), args.json, report.reference)
    return 0


def _source(args: argparse.Namespace) -> tuple[Any, str]:
    from ..packaging.source import PushSource

    path = Path(args.source)
    folder, _, ref = args.source.rpartition(":")
    if (path / "oci-layout").is_file():
        src = PushSource.from_layout(path)
    elif folder and (Path(folder) / "oci-layout").is_file():
        src = PushSource.from_layout(Path(folder), ref)
    elif path.is_dir():
        src = _build(args, path)
    else:
        raise CliError(f"{args.source}: expected a model directory or an OCI layout folder")
    name = src.image.config.get("config", {}).get("Labels", {}).get("dev.mlfn.model.name") or src.ref or "model"
    return src, name


def _build(args: argparse.Namespace, model_dir: Path) -> Any:
    from mlfn.runtime.spec import load_spec

    from ..packaging import base as bases
    from ..packaging.layer import LayerError
    from ..packaging.model_image import build_model_image
    from ..packaging.source import PushSource

    spec = load_spec(model_dir)
    try:
        base = bases.resolve_base(bases.flavour_for(spec), args.base)
        info(f"base ({base.flavour}): {base.describe()}")
        built = build_model_image(spec, base, bases.images_home() / spec.name)
    except (bases.BaseError, LayerError) as exc:
        raise CliError(str(exc)) from None
    info(f"built {built.digest}")
    return PushSource.from_layout(built.layout.root, built.ref)


def push_image(args: argparse.Namespace, source: Any, name: str, ecr: Any, registry: Any,
               lambda_pulls: bool = True) -> Any:
    """Push to ECR or a registry; `lambda_pulls=False` for images Lambda never pulls itself (the runtime base:
    model images carry its layers in their own repository)."""
    to: str = args.to
    host, _, rest = to.split("://", 1)[-1].partition("/")
    ecr_host = ecr.ECR_HOST.match(host)
    if to == "ecr" or to.startswith("ecr:") or ecr_host:
        from ..aws.session import aws_session

        if ecr_host:
            repo, _, tag = rest.partition(":")
            region = ecr_host["region"]
        else:
            repo, _, tag = (to[4:] if to.startswith("ecr:") else f"mlfn-{name}").partition(":")
            region = None
        if not repo:
            raise CliError(f"--to {to}: no repository name")
        from botocore.exceptions import BotoCoreError, ClientError

        tag = args.tag or tag or "latest"
        info(f"pushing to ECR repository {repo} (tag {tag})")
        try:
            # the session resolves the region as every command does (AWS_REGION too) and checks credentials first
            return ecr.push(source, aws_session(region).client("ecr"), repo, tag, info, lambda_pulls=lambda_pulls)
        except (BotoCoreError, ClientError) as exc:
            raise CliError(f"ECR push to {repo} failed: {exc}") from None
    ref = registry.Reference.parse(to, plain_http=args.plain_http)
    if args.tag:
        ref = registry.Reference(ref.scheme, ref.host, ref.repository, args.tag)
    info(f"pushing to {ref.base_url}/{ref.repository} (tag {ref.tag or 'latest'})")
    return registry.push(source, ref, info)
