"""`mlfn deploy MODEL_DIR`: validate, build and push the image, synthesize the stack, roll it out through a change
set, and print the HTTPS URL and how to call it. `--local` does it against the local emulator (started if needed)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..console import info, result
from ..fleet.cli import add_fleet_options, is_selection, run_deploy
from ._common import add_location


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("deploy", help="deploy a model directory to an HTTPS endpoint (AWS, or --local)")
    p.add_argument("model_dir", nargs="+", help="folder holding model.onnx and an optional mlfn.toml; or a folder "
                   "of them, several folders, or a glob: every model found (fleet)")
    p.add_argument("--target", choices=("lambda", "sagemaker", "ecs"), help="override the model's own target")
    p.add_argument("--base", help="runtime base image, as for `mlfn build --base` (default: the local base from "
                                  "`mlfn runtime build`, else the shipped descriptor)")
    p.add_argument("--no-wait", action="store_true",
                   help="with [rollout] canary or linear (Lambda): return as soon as the stack update started; "
                        "CloudFormation and CodeDeploy finish it (`mlfn status NAME` follows it)")
    add_location(p, stage_help="stage to deploy (one of the model's `stages`; default: the first, dev)",
                 local_help="deploy to the local emulator (no AWS account needed)")
    add_fleet_options(p)  # fleet hook
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import time

    if is_selection(args.model_dir):  # fleet hook: several models
        return run_deploy(args)
    args.model_dir = args.model_dir[0]
    from ..aws.cloudformation import DeployError
    from ..deploy_flow import DeployRequest, deploy
    from ..endpoints import how_to_call

    started = time.time()
    request = DeployRequest(Path(args.model_dir), args.target, args.stage, args.local, args.region, args.profile,
                            args.base, wait=not args.no_wait)
    try:
        outcome = deploy(request, say=info, on_event=lambda event: info(event.line()))
    except DeployError as exc:
        _report_rolled_back(exc, args, started)
        raise
    ep = outcome.endpoint
    verb = {"CREATED": "deployed", "UPDATED": "updated", "NO_CHANGES": "no changes",
            "STARTED": "update started"}[outcome.status]
    info(f"{outcome.stack_name}: {verb} in {outcome.seconds['total']:.1f}s ({outcome.target}, image "
         f"{outcome.digest[:19]}, auth {ep.auth_type})")
    example = Path(args.model_dir) / "example.json"
    info("call it:")
    for line in how_to_call(ep, str(example) if example.is_file() else None, outcome.local):
        info(line)
    if ep.invoker_policy:
        info("callers' IAM policy (stack output InvokerPolicy; attach it to the user or role that calls):")
        info("  " + json.dumps(ep.invoker_policy))
    if outcome.local and ep.ca_path:
        from ..local.tls import trust_hint

        info(trust_hint(Path(ep.ca_path)))
    from mlfn.runtime.spec import load_spec

    from ..plan.estimate import monthly_line

    estimate = monthly_line(load_spec(args.model_dir), outcome.target, args.region or ep.region)
    if estimate:
        info(estimate)
    doc = outcome.to_json()
    rollout = _follow_rollout(outcome, args, started)
    if rollout is not None:
        doc["rollout"] = rollout
    result(doc, args.json, ep.url)
    return 0


def _report_rolled_back(exc: Any, args: argparse.Namespace, started: float) -> None:
    """A stack update that failed because its CodeDeploy rollout did not succeed (CodeDeploy reports the failure to
    CloudFormation, which rolls the stack back): say which alarm stopped it and where the alias is, and with --json
    print the rolled-back deploy's document (status ROLLED_BACK) before the error ends the command non-zero."""
    from ..aws.cloudformation import describe_stack, outputs_of
    from ..endpoints import open_session
    from ..rollout import describe, has_rollout, latest_deployment, state

    if not exc.status.startswith("UPDATE_ROLLBACK"):
        return
    try:
        session, _ = open_session(local=args.local, region=args.region, profile=args.profile)
        stack = describe_stack(session.client("cloudformation"), exc.stack_name)
        outputs = outputs_of(stack) if stack else {}
        if not has_rollout(outputs):
            return
        deployment = latest_deployment(session.client("codedeploy"), outputs)
    except Exception:  # the deploy's own error is what matters; this only adds to it
        return
    if deployment is None or deployment["createTime"].timestamp() < started:
        return
    doc = state(session, outputs, deployment) or {}
    info(f"rollout: {describe(doc)}")
    for alarm in doc.get("alarms", []):  # CodeDeploy's own message may not carry the value: CloudWatch's reason does
        if alarm["state"] == "ALARM":
            info(f"rollout: alarm {alarm['name']} is in ALARM: {alarm['reason']}")
    if args.json:
        result({"status": "ROLLED_BACK", "stack": exc.stack_name, "stack_status": exc.status, "error": str(exc),
                "rollout": doc}, True)


def _follow_rollout(outcome: Any, args: argparse.Namespace, started: float) -> dict[str, Any] | None:
    """Report a Lambda rollout the update started (CodeDeploy shifting the alias) until it ends, unless --no-wait."""
    from ..aws.cloudformation import describe_stack, outputs_of
    from ..endpoints import open_session
    from ..rollout import follow, has_rollout, latest_deployment, state

    if outcome.target != "lambda" or outcome.status not in ("UPDATED", "STARTED"):
        return None
    session, _ = open_session(local=args.local, region=args.region, profile=args.profile)
    stack = describe_stack(session.client("cloudformation"), outcome.stack_name)
    outputs = outputs_of(stack) if stack else {}
    if not has_rollout(outputs):
        return None
    if args.no_wait:
        info(f"rollout: not followed (--no-wait); `mlfn status {outcome.name}` follows it")
        deployment = latest_deployment(session.client("codedeploy"), outputs)
        if deployment is not None and deployment["createTime"].timestamp() < started:
            deployment = None  # an earlier rollout's: this update's deployment does not exist yet
        return state(session, outputs, deployment) if deployment else {"status": "starting"}
    return follow(session, outputs, info, since=started)
