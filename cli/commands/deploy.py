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
                   help="with [rollout] canary or linear (Lambda, ECS): return as soon as the stack update started; "
                        "CloudFormation with CodeDeploy or ECS finish it (`mlfn status NAME` follows it)")
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


def _rollout_reader(args: argparse.Namespace, stack_name: str) -> tuple[Any, Any]:
    """(session, the stack's rollout reader or None)."""
    from ..aws.cloudformation import describe_stack, outputs_of
    from ..endpoints import open_session
    from ..rollout_follow import reader_for

    session, _ = open_session(local=args.local, region=args.region, profile=args.profile)
    stack = describe_stack(session.client("cloudformation"), stack_name)
    return session, reader_for(session, outputs_of(stack) if stack else {}, local=args.local)


def _report_rolled_back(exc: Any, args: argparse.Namespace, started: float) -> None:
    """A stack update that failed because its rollout did not succeed (CodeDeploy or ECS reports the failure to
    CloudFormation, which rolls the stack back): say which alarm went to ALARM and its value, and with --json print
    the rolled-back deploy's document (status ROLLED_BACK) before the error ends the command non-zero."""
    from ..rollout_follow import outcome

    if not exc.status.startswith("UPDATE_ROLLBACK"):
        return
    try:
        session, read = _rollout_reader(args, exc.stack_name)
        reading = read() if read else None
        if reading is None or reading.started is None or reading.started < started:
            return
        reading.rolled_back = True  # the stack rolled back: whatever the deployment says, it did not go forward
        info(f"rollout: {reading.line}")
        info(f"rollout: {outcome(session, reading, started)}")
    except Exception:  # the deploy's own error is what matters; this only adds to it
        return
    if args.json:
        result({"status": "ROLLED_BACK", "stack": exc.stack_name, "stack_status": exc.status, "error": str(exc),
                "rollout": reading.doc}, True)


def _follow_rollout(outcome: Any, args: argparse.Namespace, started: float) -> dict[str, Any] | None:
    """Report the rollout the update started (Lambda's CodeDeploy shift, ECS's CANARY/LINEAR deployment, a SageMaker
    inference component's rolling update) until it ends, unless --no-wait."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..rollout_follow import follow

    if outcome.status not in ("UPDATED", "STARTED"):
        return None
    try:
        session, read = _rollout_reader(args, outcome.stack_name)
        if read is None:
            return None
        if args.no_wait:
            info(f"rollout: not followed (--no-wait); `mlfn status {outcome.name}` follows it")
            reading = read()
            begun = reading.started is not None and reading.started >= started
            return reading.doc if begun else {"status": "starting"}
        return follow(session, read, info, since=started)
    except (BotoCoreError, ClientError) as exc:  # the update itself went through: say why it is not followed
        info(f"rollout: could not be read ({exc}); `mlfn status {outcome.name}` shows the stack")
        return None
