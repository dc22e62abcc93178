"""`mlfn local start|stop|status|reset`: the local cloud (control plane + data plane) on 127.0.0.1."""

from __future__ import annotations

import argparse
from typing import Any

from ..console import info, result


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("local", help="start, stop or inspect the local emulator (AWS on 127.0.0.1)")
    p.add_argument("action", choices=("start", "stop", "status", "reset"),
                   help="stop keeps what was deployed for the next start; reset stops and deletes it")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import emulator

    if args.action == "start":
        was = emulator.running()
        now = emulator.ensure_running()
        doc = {"running": True, "started": was is None, **now.to_json()}
        info("already running" if was else f"started (state in {now.state_dir})")
        result(doc, args.json, _describe(now))
        return 0
    if args.action == "reset":
        folder = emulator.reset()
        result({"reset": True, "state_dir": str(folder)}, args.json, f"stopped; deleted {folder}")
        return 0
    if args.action == "stop":
        stopped = emulator.stop()
        result({"stopped": stopped}, args.json, "stopped" if stopped else "not running")
        return 0
    current = emulator.running()
    if current is None:
        result({"running": False, "state_dir": str(emulator.state_dir())}, args.json, "not running")
        return 3
    from ..emulator import data_plane_client

    plane = data_plane_client(current).status()
    problems = plane.get("problems", {})
    deployed = _deployed(current, plane)
    claimed = {d.get("data_plane", {}).get("key") for d in deployed}
    others = [{"key": t["key"], "url": t["url"] if (t.get("config") or {}).get("public", True) else None,
               "runs": t.get("isolation", "")} for t in plane.get("targets", []) if t["key"] not in claimed]
    doc = {"running": True, **current.to_json(), "deployed": deployed, "served": others, "not_served": problems}
    lines = [_describe(current)]
    for d in deployed:
        lines.append(f"  {d['stack']:<28} {d['status']:<18} {d.get('url') or '-'}")
        if d.get("runs"):
            lines.append(f"    runs: {d['runs']}")
    for o in others:  # made without a stack (boto3, the AWS CLI), or a version an alias routes to
        lines += [f"  {o['key']:<47} {o['url'] or '(Invoke only)'}", f"    runs: {o['runs']}"]
    lines += [f"  not served: {key.partition(':')[2]}: {why}" for key, why in problems.items()]
    result(doc, args.json, "\n".join(lines))
    return 0


def _describe(current: Any) -> str:
    return (f"control plane {current.control_url} (AWS_ENDPOINT_URL)\nHTTPS gateway {current.gateway_url} "
            f"(CA {current.ca_path})\nstate {current.state_dir}")


def _deployed(current: Any, plane: dict[str, Any]) -> list[dict[str, Any]]:
    """Stacks in the emulator and what the data plane (its `plane` status) serves for each."""
    from ..aws.cloudformation import list_stacks
    from ..aws.session import local_session
    from ..endpoints import data_plane_key, endpoint_for

    session = local_session(current.control_url)
    served = {t["key"]: t for t in plane.get("targets", [])}
    out = []
    for stack in list_stacks(session):
        entry: dict[str, Any] = {"stack": stack["name"], "status": stack["status"]}
        if "InvokeUrl" in stack["outputs"]:
            entry["url"] = endpoint_for(session, stack["name"], stack["outputs"], current).url
            target = served.get(data_plane_key(stack["outputs"]))
            entry["serving"] = bool(target)
            if target:
                entry["data_plane"] = {k: target.get(k) for k in ("key", "kind", "pool", "instance") if k in target}
                entry["runs"] = target.get("isolation", "")
        out.append(entry)
    return out
