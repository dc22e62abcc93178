"""`mlfn list`: every mlfn stack (model and stage) with its status, target and URL."""

from __future__ import annotations

import argparse
from typing import Any

from ..console import result
from ._common import add_location


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("list", help="list deployed models (mlfn stacks)")
    p.add_argument("folders", nargs="*", help="only these model folders, folders of them or globs (fleet)")
    add_location(p, stage=False)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..endpoints import open_session
    from .status import summaries

    if args.folders:  # fleet hook
        from ..fleet.status import run_status

        return run_status(args, args.folders, with_drift=False)
    session, emulator = open_session(local=args.local, region=args.region, profile=args.profile)
    rows = summaries(session, emulator)
    lines = [f"{'STACK':<28} {'TARGET':<10} {'STATUS':<20} URL"] + [
        f"{r['stack']:<28} {r['target'] or '-':<10} {r['status']:<20} {r['url'] or '-'}" for r in rows]
    result(rows, args.json, "\n".join(lines) if rows else "no mlfn stacks")
    return 0
