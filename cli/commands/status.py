"""`mlfn status [NAME]`: a model's stack status, URL, image and (locally) what the emulator runs for it; without
NAME, every mlfn stack."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..console import result
from ._common import add_location


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("status", help="show a deployed model's status (or all of them)")
    p.add_argument("name", nargs="*", help="the model's name (default: all); or model folders, folders of them or "
                   "globs: one line per model and stage with drift from the folder (fleet)")
    add_location(p)
    p.set_defaults(handler=run)


def summaries(session: Any, emulator: Any) -> list[dict[str, Any]]:
    from ..aws.cloudformation import list_stacks
    from ..endpoints import endpoint_for

    rows = []
    for stack in list_stacks(session):
        outputs = stack["outputs"]
        url = endpoint_for(session, stack["name"], outputs, emulator).url if "InvokeUrl" in outputs else ""
        rows.append({"stack": stack["name"], "status": stack["status"], "target": outputs.get("Target", ""),
                     "url": url, "auth_type": outputs.get("AuthType", ""), "updated": stack["updated"]})
    return rows


def run(args: argparse.Namespace) -> int:
    from ..aws.cloudformation import outputs_of
    from ..endpoints import endpoint_for, find_stack, open_session, stack_name_for
    from ..fleet.selection import names_path

    if args.name and (len(args.name) > 1 or names_path(args.name[0])):  # fleet hook
        from ..fleet.status import run_status

        return run_status(args, args.name)
    args.name = args.name[0] if args.name else None
    session, emulator = open_session(local=args.local, region=args.region, profile=args.profile)
    if not args.name:
        rows = summaries(session, emulator)
        text = "\n".join(f"{r['stack']:<28} {r['status']:<20} {r['url'] or '-'}" for r in rows) or "no mlfn stacks"
        result(rows, args.json, text)
        return 0
    stack_name = stack_name_for(args.name, args.stage)
    stack = find_stack(session, stack_name, emulator, "")
    outputs = outputs_of(stack)
    doc: dict[str, Any] = {"stack": stack_name, "status": stack["StackStatus"],
                           "reason": stack.get("StackStatusReason", ""),
                           "updated": stack.get("LastUpdatedTime") or stack.get("CreationTime"), "outputs": outputs}
    if "InvokeUrl" in outputs:
        endpoint = endpoint_for(session, stack_name, outputs, emulator)
        doc.update(url=endpoint.url, auth_type=endpoint.auth_type, target=endpoint.target)
        if endpoint.invoker_policy:
            doc["invoker_policy"] = endpoint.invoker_policy
        doc.update(_version(session, outputs))
    if outputs.get("Target") == "lambda":
        from ..rollout import state

        rollout = state(session, outputs)
        if rollout is not None:
            doc["rollout"] = rollout
    reading = _rollout_reading(session, outputs, emulator) if outputs.get("Target") in ("ecs", "sagemaker") else None
    if reading is not None:
        doc[f"{outputs['Target']}_rollout"] = reading.doc
    if emulator is not None:
        doc["local"] = _local(emulator, outputs)
    lines = [f"{k}: {json.dumps(v) if isinstance(v, dict) else v}" for k, v in doc.items()
             if k not in ("outputs", "local", "rollout", "ecs_rollout", "sagemaker_rollout") and v not in ("", None)]
    if "rollout" in doc:
        from ..rollout import describe

        lines.append(f"rollout: {describe(doc['rollout'])}")
    if reading is not None:
        lines.append(f"rollout: {reading.line}")
    if "local" in doc:
        lines.append(f"local: {_describe_local(doc['local'])}")
    result(doc, args.json, "\n".join(lines))
    return 0


def _rollout_reading(session: Any, outputs: dict[str, str], emulator: Any) -> Any:
    """ECS: the newest service deployment (the emulator has none); SageMaker: the inference component's update."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..rollout_follow import reader_for

    read = reader_for(session, outputs, local=emulator is not None)
    try:
        return read() if read else None
    except (BotoCoreError, ClientError) as exc:  # the stack's status is still worth showing
        from ..rollout_follow import Reading

        return Reading(f"could not be read: {exc}", {"status": "unknown", "error": str(exc)})


def _describe_local(local: dict[str, Any]) -> str:
    if local.get("serving") is False:
        return f"{local['key']} is not served by the data plane (deploy again to register it)"
    pool = local.get("pool")
    if pool:
        return (f"{local['key']}: {pool['sandboxes']} sandbox(es), {pool['idle']} idle, {pool['invocations']} "
                f"invocation(s), {pool['cold_starts']} cold start(s), {pool['throttles']} throttled")
    return f"{local['key']}: {local.get('instance')}"


def _version(session: Any, outputs: dict[str, str]) -> dict[str, Any]:
    """For Lambda: the version the alias points at and its image."""
    if outputs.get("Target") != "lambda" or not outputs.get("FunctionName"):
        return {}
    lam = session.client("lambda")
    try:
        alias = lam.get_alias(FunctionName=outputs["FunctionName"], Name=outputs.get("AliasName", "live"))
        version = alias["FunctionVersion"]
        code = lam.get_function(FunctionName=outputs["FunctionName"], Qualifier=version).get("Code", {})
    except Exception:  # an alias the account hides from us: the stack's status is still worth showing
        return {}
    return {"version": version, "image": code.get("ImageUri", "")}


def _local(emulator: Any, outputs: dict[str, str]) -> dict[str, Any]:
    from ..emulator import data_plane_client
    from ..endpoints import data_plane_key

    key = data_plane_key(outputs)
    for target in data_plane_client(emulator).status().get("targets", []):
        if target.get("key") == key:
            return {k: target[k] for k in ("key", "pool", "instance", "settings") if k in target}
    return {"key": key, "serving": False}
