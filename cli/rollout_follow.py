"""Follow a rollout step by step on any target: one loop (`follow`) over per-target readers.

A reader turns the target's own state into a `Reading`: Lambda's CodeDeploy deployment (`cli/rollout.py`), ECS's
CANARY/LINEAR service deployment (`cli/ecs_rollout.py`), a SageMaker inference component's rolling update
(DescribeInferenceComponent: InferenceComponentStatus Creating/Updating/InService/Failed, copies). The loop prints
each new short line, and at the end whether the rollout rolled forward or back; on a rollback, which alarm went to
ALARM and its value (CloudWatch's alarm history, `cli/alarm_history.py`: it keeps the value after the alarm cleared).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Say = Callable[[str], None]


@dataclass
class Reading:
    """One look at a rollout: `started` None when there is none (yet)."""

    line: str
    doc: dict[str, Any]
    started: float | None = None  # epoch seconds the deployment began
    done: bool = False
    rolled_back: bool = False
    alarms: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


Reader = Callable[[], Reading]


def lambda_reader(session: Any, outputs: dict[str, str]) -> Reader:
    from . import rollout

    def read() -> Reading:
        deployment = rollout.latest_deployment(session.client("codedeploy"), outputs)
        doc = rollout.state(session, outputs, deployment) or {}
        if deployment is None:
            return Reading(rollout.describe(doc), doc)
        status = deployment["status"]
        return Reading(rollout.describe(doc), doc, deployment["createTime"].timestamp(), status in rollout.DONE,
                       status in ("Failed", "Stopped"), [a["name"] for a in doc.get("alarms", [])],
                       list(deployment.get("deploymentStatusMessages", [])))
    return read


def ecs_reader(session: Any, outputs: dict[str, str]) -> Reader:
    from . import ecs_rollout

    def read() -> Reading:
        deployment = ecs_rollout.latest_deployment(session.client("ecs"), outputs)
        doc = ecs_rollout.state(session, outputs, deployment)
        if deployment is None:
            return Reading(ecs_rollout.describe(doc), doc)
        begun = deployment.get("createdAt") or deployment.get("startedAt")
        status = deployment["status"]
        return Reading(ecs_rollout.describe(doc), doc, begun.timestamp() if begun else None,
                       status in ecs_rollout.DONE, status != "SUCCESSFUL",
                       [a["name"] for a in doc.get("alarms", [])])
    return read


def sagemaker_state(session: Any, outputs: dict[str, str]) -> dict[str, Any]:
    """The inference component's update: status, copies, the rollout alarms, the failure reason."""
    found = session.client("sagemaker").describe_inference_component(
        InferenceComponentName=outputs["InferenceComponentName"])
    runtime = found.get("RuntimeConfig") or {}
    config = found.get("LastDeploymentConfig") or {}
    alarms = [a["AlarmName"] for a in (config.get("AutoRollbackConfiguration") or {}).get("Alarms", [])]
    doc = {"component": found["InferenceComponentName"], "status": found["InferenceComponentStatus"],
           "copies": runtime.get("CurrentCopyCount"), "desired_copies": runtime.get("DesiredCopyCount"),
           "alarms": alarms, "modified": found.get("LastModifiedTime")}
    if found.get("FailureReason"):
        doc["reason"] = found["FailureReason"]
    return doc


def sagemaker_reader(session: Any, outputs: dict[str, str]) -> Reader:
    def read() -> Reading:
        doc = sagemaker_state(session, outputs)
        line = (f"{doc['status']}; copies {doc['copies']}/{doc['desired_copies']}"
                + (f"; alarms: {', '.join(doc['alarms'])}" if doc["alarms"] else "")
                + (f"; {doc['reason']}" if doc.get("reason") else ""))
        modified = doc["modified"]
        return Reading(line, doc, modified.timestamp() if modified else None,
                       doc["status"] in ("InService", "Failed"),
                       doc["status"] == "Failed" or bool(doc.get("reason")), doc["alarms"])
    return read


def reader_for(session: Any, outputs: dict[str, str], *, local: bool = False) -> Reader | None:
    """The reader for a stack's target, or None when it has no rollout to follow (a Lambda model without [rollout];
    an ECS service in the emulator, which has no service deployments; a SageMaker serverless endpoint)."""
    from .rollout import has_rollout

    target = outputs.get("Target")
    if target == "lambda" and has_rollout(outputs):
        return lambda_reader(session, outputs)
    if target == "ecs" and outputs.get("ClusterName") and outputs.get("ServiceName") and not local:
        return ecs_reader(session, outputs)
    if target == "sagemaker" and outputs.get("InferenceComponentName"):
        return sagemaker_reader(session, outputs)
    return None


def outcome(session: Any, reading: Reading, since: float) -> str:
    """The final line, short: rolled forward, or rolled back naming the alarm that went to ALARM and its value."""
    status = reading.doc.get("status", "")
    if not reading.rolled_back:
        return f"rolled forward ({status})"
    from .alarm_history import describe_fired, fired

    alarm = fired(session.client("cloudwatch"), reading.alarms, since) if reading.alarms else None
    cause = describe_fired(alarm) if alarm else "no rollout alarm went to ALARM during it"
    reading.doc["fired"] = alarm
    return f"rolled back ({status}); {cause}"


def follow(session: Any, read: Reader, say: Say, *, since: float = 0.0, timeout_s: float = 7200,
           poll_s: float = 2.0) -> dict[str, Any]:
    """Report the rollout begun after `since` (epoch seconds) until it ends: each new status message and each change
    of its line; then whether it rolled forward or back. Returns its last state; at once (saying so) when none
    began after `since`."""
    deadline = time.monotonic() + timeout_s
    seen, last = 0, ""
    while True:
        reading = read()
        if reading.started is None or reading.started < since:
            say(f"rollout: none started by this update; {reading.line}")
            return reading.doc
        for message in reading.messages[seen:]:
            say(f"rollout: {message}")
        seen = len(reading.messages)
        if reading.line != last:
            say(f"rollout: {reading.line}")
            last = reading.line
        if reading.done:
            say(f"rollout: {outcome(session, reading, since)}")
            return reading.doc
        if time.monotonic() > deadline:
            say("rollout: still running; `mlfn status NAME` shows it")
            return reading.doc
        time.sleep(poll_s)
