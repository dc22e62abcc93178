"""`mlfn rollback NAME`: go back to the previous version at once (a running rollout is stopped and rolled back;
otherwise the alias returns to the version before the last rollout), saying which alarm fired and its value. On ECS:
the service deployment in progress is stopped with rollback."""

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
    if outputs.get("Target") == "ecs":  # ECS's own deployment: StopServiceDeployment with rollback
        from .. import ecs_rollout

        doc = ecs_rollout.rollback(session, outputs, info)
        result(doc, args.json, ecs_rollout.describe(doc))
        return 0
    if outputs.get("Target") == "sagemaker" and outputs.get("InferenceComponentName"):
        _say_sagemaker_alarm(session, outputs)
    if outputs.get("Target") != "lambda":
        raise CliError(f"{stack_name} runs on {outputs.get('Target') or 'an unknown target'}: SageMaker rolls "
                       "back by itself when a rollout alarm fires; `mlfn rollback` acts on Lambda aliases and ECS "
                       "service deployments")
    doc = rollback(session, outputs, info)
    result(doc, args.json, describe(doc) if doc.get("traffic") else "rolled back")
    return 0


def _say_sagemaker_alarm(session: Any, outputs: dict[str, str]) -> None:
    """The alarm of the component's last update that went to ALARM since that update began, and its value."""
    from ..alarm_history import describe_fired, fired
    from ..rollout_follow import sagemaker_state

    doc = sagemaker_state(session, outputs)
    since = doc["modified"].timestamp() if doc.get("modified") else 0.0
    alarm = fired(session.client("cloudwatch"), doc["alarms"], since) if doc["alarms"] else None
    info(f"inference component {doc['component']}: {doc['status']}"
         + (f"; {describe_fired(alarm)}" if alarm else "; no rollback alarm went to ALARM during its last update"))
