"""`mlfn validate MODEL_DIR`: check a model directory and print its signature."""

from __future__ import annotations

import argparse
from typing import Any

from mlfn.runtime.spec import load_spec

from ..console import result


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("validate", help="check a model directory and print its signature")
    p.add_argument("model_dir", help="folder holding model.onnx and an optional mlfn.toml")
    p.add_argument("--json", action="store_true", help="print the signature as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.model_dir)
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
    payload = {**spec.signature_json(), "target": s.target, "model_bytes": spec.model_bytes,
               "batchable": spec.batchable, "hooks": s.hooks or None}
    result(payload, args.json, "\n".join(lines))
    return 0
