"""An ECS model's rollout (ECS's own CANARY/LINEAR deployment), read and acted on through boto3: ECS
(ListServiceDeployments, DescribeServiceDeployments, StopServiceDeployment) and CloudWatch (DescribeAlarms,
DescribeAlarmHistory).

The stack names the cluster and service in its outputs `ClusterName` and `ServiceName`. `state()` is what
`mlfn status` shows of the newest service deployment; `rollback()` is `mlfn rollback`: StopServiceDeployment with
stopType ROLLBACK on the deployment in progress ("Stopping Amazon ECS service deployments": it applies to a
deployment PENDING or IN_PROGRESS, which then moves to ROLLBACK_REQUESTED; also without the rollback option).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .console import CliError

RUNNING = ("PENDING", "IN_PROGRESS")
ROLLING_BACK = ("STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")
DONE = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")
Say = Callable[[str], None]


def _service(outputs: dict[str, str]) -> dict[str, str]:
    if not (outputs.get("ClusterName") and outputs.get("ServiceName")):
        raise CliError("the stack has no ClusterName/ServiceName outputs: not an mlfn ECS model stack")
    return {"cluster": outputs["ClusterName"], "service": outputs["ServiceName"]}


def latest_deployment(ecs: Any, outputs: dict[str, str], statuses: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The newest service deployment (with one of `statuses`, when given), described in full."""
    kwargs: dict[str, Any] = _service(outputs)
    if statuses:
        kwargs["status"] = list(statuses)
    briefs = ecs.list_service_deployments(**kwargs).get("serviceDeployments", [])
    if not briefs:
        return None
    newest = max(briefs, key=lambda b: b.get("createdAt") or b.get("startedAt") or 0)
    found = ecs.describe_service_deployments(serviceDeploymentArns=[newest["serviceDeploymentArn"]])
    deployments: list[dict[str, Any]] = found.get("serviceDeployments", [])
    return deployments[0] if deployments else None


def alarms_of(session: Any, deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """The deployment's alarms with their state and reason (DescribeAlarms), triggered ones marked."""
    watched = deployment.get("alarms") or {}
    names = list(watched.get("alarmNames") or [])
    if not names:
        return []
    triggered = set(watched.get("triggeredAlarmNames") or [])
    found = session.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
    return [{"name": a["AlarmName"], "state": a["StateValue"], "reason": a.get("StateReason", ""),
             "triggered": a["AlarmName"] in triggered} for a in found]


def state(session: Any, outputs: dict[str, str], deployment: dict[str, Any] | None = None) -> dict[str, Any]:
    """The newest service deployment: status, lifecycle stage, revisions, alarms, why it stopped or rolled back."""
    deployment = deployment or latest_deployment(session.client("ecs"), outputs)
    if deployment is None:
        return {"status": "none"}
    doc: dict[str, Any] = {
        "deployment": deployment["serviceDeploymentArn"], "status": deployment["status"],
        "stage": deployment.get("lifecycleStage", ""),
        "to_revision": (deployment.get("targetServiceRevision") or {}).get("arn", ""),
        "from_revisions": [r.get("arn", "") for r in deployment.get("sourceServiceRevisions") or []],
        "alarms": alarms_of(session, deployment)}
    if deployment.get("statusReason"):
        doc["reason"] = deployment["statusReason"]
    if (deployment.get("rollback") or {}).get("reason"):
        doc["rolled_back"] = deployment["rollback"]["reason"]
    return doc


def describe(doc: dict[str, Any]) -> str:
    """One line for a rollout state."""
    if not doc.get("deployment"):
        return "no ECS service deployment yet"
    alarms = ", ".join(f"{a['name']} {a['state']}" + (" (fired)" if a.get("triggered") else "")
                       for a in doc.get("alarms", [])) or "no alarms"
    line = f"{doc['status']}" + (f" at {doc['stage']}" if doc.get("stage") else "") + f"; alarms: {alarms}"
    return line + (f"; {doc['reason']}" if doc.get("reason") else "")


def rollback(session: Any, outputs: dict[str, str], say: Say, *, timeout_s: float = 600,
             poll_s: float = 2.0) -> dict[str, Any]:
    """Stop the deployment in progress with rollback (StopServiceDeployment stopType ROLLBACK) and wait until ECS
    reports it rolled back. Says which alarm fired and its value when one did. Without a deployment in progress
    there is nothing ECS can roll back at once: the error says so."""
    ecs = session.client("ecs")
    running = latest_deployment(ecs, outputs, RUNNING + ROLLING_BACK)
    if running is None:
        last = state(session, outputs)
        raise CliError(f"no ECS service deployment in progress for {outputs['ServiceName']} (newest: "
                       f"{describe(last)}); ECS rolls a canary/linear deployment back by itself when a rollout "
                       "alarm fires; to return to an earlier version, deploy its model folder again")
    from .alarm_history import say_fired

    begun = running.get("createdAt") or running.get("startedAt")
    say_fired(session.client("cloudwatch"), alarms_of(session, running), begun.timestamp() if begun else 0.0, say)
    arn = running["serviceDeploymentArn"]
    if running["status"] in RUNNING:
        ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
        say(f"stopping service deployment {arn} with rollback")
    else:
        say(f"service deployment {arn} is already {running['status']}")
    deadline = time.monotonic() + timeout_s
    while True:
        found = ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][0]
        if found["status"] in DONE:
            break
        if time.monotonic() > deadline:
            raise CliError(f"service deployment {arn} still {found['status']} after {timeout_s:.0f}s; "
                           "`mlfn status NAME` shows it")
        time.sleep(poll_s)
    doc = state(session, outputs, found)
    if found["status"] == "ROLLBACK_FAILED":
        raise CliError(f"service deployment {arn}: {describe(doc)}")
    say(f"rolled back: {describe(doc)}" if found["status"] == "ROLLBACK_SUCCESSFUL" else describe(doc))
    return doc
