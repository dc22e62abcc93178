"""`mlfn rollback NAME`: go back to the previous version at once (a running rollout is stopped and rolled back;
otherwise the alias returns to the version before the last rollout), saying which alarm fired and its value."""

from __future__ import annotations

import argparse
from typing import Any

from ..console import info, result
from ._common import add_location


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("rollback", help="go back to a model's previous version at once")
    p.add_argument("name", help="the model's name")
    add_location(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..aws.cloudformation import outputs_of
    from ..console import CliError
    from ..endpoints import find_stack, open_session, stack_name_for
    from ..rollout import describe, rollback

    session, emulator = open_session(local=args.local, region=args.region, profile=args.profile)
    stack_name = stack_name_for(args.name, args.stage)
    outputs = outputs_of(find_stack(session, stack_name, emulator, "nothing to roll back"))
    if outputs.get("Target") != "lambda":
        raise CliError(f"{stack_name} runs on {outputs.get('Target') or 'an unknown target'}: SageMaker and ECS roll "
                       "back by themselves when a rollout alarm fires; `mlfn rollback` acts on Lambda aliases")
    doc = rollback(session, outputs, info)
    result(doc, args.json, describe(doc) if doc.get("traffic") else "rolled back")
    return 0
