"""`mlfn synth MODEL_DIR`: the model's CloudFormation template, offline (no credentials, no Docker, no npm).

Runs the same stack `cdk synth` builds (mlfn.infra.ModelStack) with cdk-nag and CDK's template checks; any
unacknowledged finding fails with one line naming it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from mlfn.runtime.settings import TARGETS
from mlfn.runtime.spec import load_spec

from ..console import info, result


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("synth", help="write the model's CloudFormation template (CDK synth, offline)")
    p.add_argument("model_dir", nargs="+", help="folder holding model.onnx and an optional mlfn.toml; or a folder of "
                   "them, several folders, or a glob: every stack in one CDK app run (fleet)")
    p.add_argument("--target", choices=TARGETS, help="override the target in mlfn.toml")
    p.add_argument("--stage", default="dev", help="stage (one of the model's `stages`; default: dev)")
    p.add_argument("--image", metavar="URI", help="ECR image ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO@sha256:... "
                   "(default: an image asset built on the runtime base at deploy time)")
    p.add_argument("--out", metavar="DIR", help="cloud assembly folder (default: cdk.out/mlfn-NAME-STAGE)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mlfn.infra.checks import check_stage, resolve_target
    from mlfn.infra.image import EcrImage
    from mlfn.infra.naming import stack_name

    from ..fleet.selection import is_selection

    if is_selection(args.model_dir):  # fleet hook
        from ..fleet.commands import run_synth

        return run_synth(args, args.model_dir)
    args.model_dir = args.model_dir[0]
    spec = load_spec(args.model_dir)
    check_stage(spec, args.stage)
    target = resolve_target(spec, args.target)
    if args.image:
        EcrImage.parse(args.image)
    name = stack_name(spec, args.stage)
    out = Path(args.out) if args.out else Path("cdk.out") / name
    info(f"- synth {name} ({target}) -> {out}")
    from mlfn.infra.synth import synth_model

    started = time.perf_counter()
    template_path = synth_model(spec.directory, image_uri=args.image, stage=args.stage, outdir=out, target=target)
    template = json.loads(template_path.read_text(encoding="utf-8"))
    payload = {
        "stack": name,
        "target": target,
        "stage": args.stage,
        "template": str(template_path),
        "outdir": str(out),
        "resources": len(template.get("Resources", {})),
        "outputs": sorted(template.get("Outputs", {})),
        "image": args.image or "asset",
        "seconds": round(time.perf_counter() - started, 1),
    }
    text = (f"{name}: {payload['resources']} resources, cdk-nag clean -> {template_path} "
            f"({payload['seconds']}s)")
    result(payload, args.json, text)
    return 0
