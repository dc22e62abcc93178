"""`mlfn logs NAME [--since 10m] [--follow]`: the CloudWatch Logs of a deployed model (its function, endpoint or
service), oldest first."""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime
from typing import Any

from ..console import CliError, result
from ._common import add_location

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FOLLOW_POLL_S = 1.0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("logs", help="show a deployed model's CloudWatch logs")
    p.add_argument("name", help="the model's name")
    p.add_argument("--since", default="10m", help="how far back: 30s, 10m, 2h, 1d (default 10m)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    add_location(p)
    p.set_defaults(handler=run)


def parse_since(text: str) -> float:
    m = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not m:
        raise CliError(f"--since {text!r}: expected a number and a unit, e.g. 30s, 10m, 2h, 1d")
    return int(m[1]) * UNITS[m[2]]


def log_groups(session: Any, stack_name: str, outputs: dict[str, str]) -> list[str]:
    """The log groups a model writes to: its runtime's default group and the group its stack made for it."""
    target = outputs.get("Target", "lambda")
    groups = []
    if target == "lambda" and outputs.get("FunctionName"):
        groups.append(f"/aws/lambda/{outputs['FunctionName']}")
    elif target == "sagemaker" and outputs.get("EndpointName"):
        groups.append(f"/aws/sagemaker/Endpoints/{outputs['EndpointName']}")
    elif target == "ecs" and outputs.get("ServiceName"):
        groups.append(f"/ecs/{outputs['ServiceName']}")
    resources = session.client("cloudformation").describe_stack_resources(StackName=stack_name)["StackResources"]
    for r in resources:
        if r["ResourceType"] == "AWS::Logs::LogGroup" and r["LogicalResourceId"].startswith("ModelLogs"):
            groups.append(r.get("PhysicalResourceId") or "")
    return [g for g in dict.fromkeys(groups) if g]


def fetch(logs: Any, groups: list[str], start_ms: int, seen: set[str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for group in groups:
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
        try:
            for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
                for e in page.get("events", []):
                    if e["eventId"] not in seen:
                        seen.add(e["eventId"])
                        events.append({**e, "group": group})
        except logs.exceptions.ResourceNotFoundException:
            continue
    return sorted(events, key=lambda e: (e["timestamp"], e.get("ingestionTime", 0)))


def run(args: argparse.Namespace) -> int:
    from ..endpoints import lookup, open_session

    since = parse_since(args.since)
    session, emulator = open_session(local=args.local, region=args.region, profile=args.profile)
    endpoint = lookup(session, args.name, args.stage, emulator)
    groups = log_groups(session, endpoint.stack_name, endpoint.outputs)
    logs = session.client("logs")
    seen: set[str] = set()
    start_ms = int((time.time() - since) * 1000)
    events = fetch(logs, groups, start_ms, seen)
    if args.json and not args.follow:
        result({"groups": groups, "events": [{"timestamp": e["timestamp"], "group": e["group"],
                                              "stream": e.get("logStreamName"), "message": e["message"]}
                                             for e in events]}, True)
        return 0
    _print(events)
    while args.follow:
        time.sleep(FOLLOW_POLL_S)
        fresh = fetch(logs, groups, start_ms, seen)
        _print(fresh)
    return 0


def _print(events: list[dict[str, Any]]) -> None:
    for e in events:
        stamp = datetime.fromtimestamp(e["timestamp"] / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        print(f"{stamp}Z {e.get('logStreamName', '')[-12:]:<12} {e['message'].rstrip()}", flush=True)
