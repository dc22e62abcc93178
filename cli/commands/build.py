"""`mlfn build MODEL_DIR`: write the model's container image as an OCI image layout, offline, without Docker."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from ..console import CliError, info, result
from ..hooks_check import check_hooks


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("build", help="build a model's container image (OCI layout, no Docker needed)")
    p.add_argument("model_dir", help="folder holding model.onnx and an optional mlfn.toml")
    p.add_argument("--base", help="runtime base: an OCI layout folder, FOLDER:REF, a descriptor .json, or 'none' "
                                  "(default: the local base from `mlfn runtime build`, else the shipped descriptor)")
    p.add_argument("--out", help="OCI layout folder to write (default: <MLFN_HOME or .mlfn>/images/<name>)")
    p.add_argument("--optimize", action="store_true",
                   help="add onnxruntime's offline-optimised graph (model.optimized.onnx) and report load time/memory")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mlfn.runtime.spec import load_spec

    from ..packaging import base as bases
    from ..packaging.dependencies import describe, model_dependencies
    from ..packaging.layer import LayerError
    from ..packaging.model_image import build_model_image
    from ..packaging.oci import LayoutError

    spec = load_spec(args.model_dir)
    # an image whose hooks cannot load would only fail at deploy's health probe
    # (the folder's requirements.txt resolved for the image first, so its refusals name the image's platform)
    check_hooks(spec.hooks_path, env=model_dependencies(spec).env if spec.hooks_path else None)
    flavour = bases.flavour_for(spec)
    try:
        base = bases.resolve_base(flavour, args.base)
    except bases.BaseError as exc:
        raise CliError(str(exc)) from None
    info(f"base ({flavour}): {base.describe()}")
    out = Path(args.out) if args.out else bases.images_home() / spec.name
    payload: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mlfn-build-") as tmp:
        extra: dict[str, Path] = {}
        if args.optimize:
            extra, payload["profile"] = _optimize(spec, flavour, Path(tmp))
        try:
            built = build_model_image(spec, base, out, extra_files=extra)
        except (LayerError, LayoutError, bases.BaseError) as exc:
            raise CliError(str(exc)) from None
    deps = built.dependencies
    if deps and deps.layer:
        info(f"layer {deps.layer.digest[:19]} (requirements.txt): {deps.layer.size / 1e6:.2f} MB compressed, "
             f"{describe(deps)}")
        payload["dependencies"] = {"digest": deps.layer.digest, "size": deps.layer.size,
                                   "packages": [p.__dict__ for p in deps.packages], "target": deps.target.name}
    for role, layer in zip(("model file", "other files"), built.layers, strict=True):
        info(f"layer {layer.digest[:19]} ({role}): {layer.size / 1e6:.2f} MB compressed, "
             f"{layer.uncompressed_size / 1e6:.2f} MB tar, {layer.entries} entries")
    own = sum(layer.size for layer in built.layers)
    info(f"image {built.ref} written to {out}: model layers {own / 1e6:.2f} MB for a {spec.model_bytes / 1e6:.2f} MB "
         "model file")
    payload.update({
        "name": spec.name, "digest": built.digest, "layout": str(out), "ref": built.ref, "flavour": flavour,
        "base": {"kind": base.kind, "source": base.source, "digest": base.image.digest if base.image else None,
                 "reference": base.reference or None},
        "layers": [{"role": role, "digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size,
                    "uncompressed_size": layer.uncompressed_size, "entries": layer.entries}
                   for role, layer in zip(("model", "files"), built.layers, strict=True)],
        "model_bytes": spec.model_bytes,
    })
    result(payload, args.json, built.digest)
    return 0


def _optimize(spec: Any, flavour: str, tmp: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    from mlfn.runtime.model import optimized_path

    from ..packaging.optimize import OptimizeError, advice, data_file, optimize, profile

    name = optimized_path(spec).relative_to(spec.directory).as_posix()  # the file mlfn.runtime.model prefers
    try:
        before = profile(spec.model_path)
        written = optimize(spec.model_path, tmp / Path(name).name, flavour)
        after = profile(written[0])
    except OptimizeError as exc:
        raise CliError(str(exc)) from None
    size = sum(f.stat().st_size for f in written)
    info(f"optimised graph: {size / 1e6:.2f} MB in {len(written)} file(s) (model {spec.model_bytes / 1e6:.2f} MB)")
    info(f"session load: {before.load_s:.3f}s -> {after.load_s:.3f}s optimised; peak RSS {after.peak_rss_mb:.0f} MB")
    info(f"target hint: {advice(after, spec.settings.lambda_.memory_mb)}")
    # the data file's name is written inside the graph, so it keeps it beside the graph in the image
    files = {name: written[0], **{data_file(Path(name)).as_posix(): f for f in written[1:]}}
    return files, {"original": before.to_json(), "optimized": after.to_json(), "optimized_bytes": size}
