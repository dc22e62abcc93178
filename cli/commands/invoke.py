"""`mlfn invoke NAME --data JSON|@file`: call a deployed model the way a client would (SigV4 when IAM guards it)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..console import CliError, result
from ._common import add_location


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("invoke", help="call a deployed model and print its answer")
    p.add_argument("name", nargs="+", help="the model's name (mlfn.toml `name`, default the folder's name); or model "
                   "folders, folders of them or globs: each model called once (fleet)")
    p.add_argument("--data", help="request body: inline JSON, or @FILE (JSON, PNG, CSV, ...); a fleet without it "
                                  "sends each folder's example.json")
    p.add_argument("--content-type", help="content type of a non-JSON body (default: from @FILE's suffix, else JSON, "
                                          "CSV or octet-stream as the body reads)")
    p.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="how long to keep retrying while a SageMaker or ECS model scales from zero (HTTP 503); "
                        "default 300, 0: do not retry")
    add_location(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..client import DEFAULT_WAIT_S, WAKING_TARGETS, build_payload, file_content_type, read_data, send_until_awake
    from ..endpoints import lookup, open_session

    if isinstance(args.name, list):  # fleet hook
        from ..fleet.selection import names_path

        if len(args.name) > 1 or names_path(args.name[0]):
            from ..fleet.commands import run_invoke

            return run_invoke(args, args.name)
        args.name = args.name[0]
    if args.data is None:
        raise CliError("--data is required: the request body, inline JSON or @FILE")
    wait_s = DEFAULT_WAIT_S if args.wait is None else args.wait
    if not 0 <= wait_s <= 3600:
        raise CliError(f"--wait {args.wait:g}: expected seconds from 0 to 3600")
    raw = read_data(args.data)
    session, emulator = open_session(local=args.local, region=args.region, profile=args.profile)
    endpoint = lookup(session, args.name, args.stage, emulator)
    payload = build_payload(raw, args.name, endpoint.target, args.content_type or file_content_type(args.data))
    credentials = session.get_credentials() if endpoint.auth_type == "AWS_IAM" else None
    answer = send_until_awake(endpoint.url, payload, wait_s=wait_s,
                              say=lambda line: print(f"mlfn invoke: {line}", file=sys.stderr),
                              auth_type=endpoint.auth_type, target=endpoint.target, region=endpoint.region,
                              credentials=credentials, ca_bundle=endpoint.ca_path)
    if answer.status == 503 and endpoint.target in WAKING_TARGETS:
        print(f"mlfn invoke: {args.name} is still scaling from zero after {wait_s:g}s (HTTP 503); try again "
              "later, or wait longer with --wait SECONDS", file=sys.stderr)
    if args.json:
        import json

        try:
            body: Any = json.loads(answer.body)
        except ValueError:
            body = answer.body.decode("utf-8", errors="replace")
        result({"status": answer.status, "url": endpoint.url.rstrip("/") + payload.path, "protocol": payload.protocol,
                "headers": answer.headers, "body": body}, True)
        return 0 if answer.status < 300 else 1
    if answer.status >= 300:
        print(f"mlfn invoke: HTTP {answer.status} from {endpoint.url.rstrip('/')}{payload.path}", file=sys.stderr)
        print(answer.text(), file=sys.stderr)
        if answer.status == 415 and payload.content_type == "application/octet-stream":
            print("mlfn invoke: --data is neither JSON nor CSV, so it went out as application/octet-stream; "
                  "name its type with --content-type (e.g. image/png)", file=sys.stderr)
        return 1
    print(answer.text())
    return 0
