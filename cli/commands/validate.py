"""`mlfn validate MODEL_DIR`: check a model directory and print its signature."""

from __future__ import annotations

import argparse
from typing import Any

from mlfn.runtime.spec import ModelSpec, load_spec

from ..console import result
from ..hooks_check import check_hooks
from ..packaging.dependencies import REQUIREMENTS, describe, model_dependencies


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("validate", help="check a model directory and print its signature")
    p.add_argument("model_dir", help="folder holding model.onnx and an optional mlfn.toml")
    p.add_argument("--json", action="store_true", help="print the signature as JSON")
    p.add_argument("--quick", action="store_true", help="only read the files: skip loading the model in onnxruntime")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.model_dir)
    deps = model_dependencies(spec)
    check_hooks(spec.hooks_path, env=deps.env)  # a hooks module that fails to import is refused here, not at deploy
    load_ms = None if args.quick else _load_ms(spec)
    s = spec.settings
    lines = [
        f"{spec.name}: valid ({spec.model_path.name}, {spec.model_bytes / 1e6:.2f} MB, target {s.target})",
        "inputs:",
        *(f"  {t.name}: {t.describe()}" for t in spec.inputs),
        "outputs:",
        *(f"  {t.name}: {t.describe()}" for t in spec.outputs),
    ]
    if s.hooks:
        lines.append(f"hooks: {s.hooks}")
    if deps.image:
        lines.append(f"dependencies ({REQUIREMENTS}): {describe(deps.image)}")
    if load_ms is not None:
        lines.append(f"onnxruntime session: loads in {load_ms:.0f} ms")
    payload = {**spec.signature_json(), "target": s.target, "model_bytes": spec.model_bytes,
               "batchable": spec.batchable, "hooks": s.hooks or None, "load_ms": load_ms,
               "dependencies": deps.to_json()}
    result(payload, args.json, "\n".join(lines))
    return 0


def _load_ms(spec: ModelSpec) -> float:
    """Create the model's onnxruntime session once, as the runtime will, and time it."""
    import time

    import onnxruntime  # noqa: F401 - imported first so the figure is the session's own load time

    from mlfn.runtime.model import Model

    started = time.perf_counter()
    Model(spec)
    return (time.perf_counter() - started) * 1000
