"""A Lambda model's rollout, read and acted on through boto3: CodeDeploy (ListDeployments, GetDeployment,
GetDeploymentGroup, StopDeployment), Lambda (GetAlias, UpdateAlias) and CloudWatch (DescribeAlarms).

The stack names the CodeDeploy application and deployment group in its outputs `RolloutApplication` and
`RolloutDeploymentGroup` (a model with `[rollout] strategy` canary or linear). `state()` is what `mlfn status`
shows; `follow()` reports a running deployment step by step (`mlfn deploy`, through
`rollout_follow`); `rollback()` is `mlfn rollback`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .console import CliError

RUNNING = ("Created", "Queued", "InProgress", "Baking", "Ready")
DONE = ("Succeeded", "Failed", "Stopped")
Say = Callable[[str], None]


def has_rollout(outputs: dict[str, str]) -> bool:
    return bool(outputs.get("RolloutApplication") and outputs.get("RolloutDeploymentGroup"))


def latest_deployment(codedeploy: Any, outputs: dict[str, str],
                      statuses: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The newest deployment of the model's deployment group (with one of `statuses`, when given)."""
    kwargs: dict[str, Any] = {"applicationName": outputs["RolloutApplication"],
                              "deploymentGroupName": outputs["RolloutDeploymentGroup"]}
    if statuses:
        kwargs["includeOnlyStatuses"] = list(statuses)
    ids = codedeploy.list_deployments(**kwargs).get("deployments", [])
    infos = [codedeploy.get_deployment(deploymentId=i)["deploymentInfo"] for i in ids]
    infos = [i for i in infos if i.get("creator") != "codeDeployRollback"]
    return max(infos, key=lambda i: i["createTime"], default=None)


def versions_of(deployment: dict[str, Any]) -> tuple[str, str]:
    """(current, target) Lambda versions of a deployment's AppSpec."""
    content = ((deployment.get("revision") or {}).get("appSpecContent") or {}).get("content") or "{}"
    for resource in json.loads(content).get("Resources", []):
        for body in resource.values():
            props = body.get("Properties", {})
            if body.get("Type") == "AWS::Lambda::Function":
                return str(props.get("CurrentVersion", "")), str(props.get("TargetVersion", ""))
    return "", ""


def alarms_of(session: Any, outputs: dict[str, str]) -> list[dict[str, Any]]:
    """The deployment group's alarms with their state and reason (DescribeAlarms)."""
    group = session.client("codedeploy").get_deployment_group(
        applicationName=outputs["RolloutApplication"],
        deploymentGroupName=outputs["RolloutDeploymentGroup"])["deploymentGroupInfo"]
    names = [a["name"] for a in (group.get("alarmConfiguration") or {}).get("alarms", [])]
    if not names:
        return []
    found = session.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
    return [{"name": a["AlarmName"], "state": a["StateValue"], "reason": a.get("StateReason", "")} for a in found]


def traffic(session: Any, outputs: dict[str, str]) -> dict[str, Any]:
    """The alias's version and the share of calls its additional version takes (GetAlias)."""
    alias = session.client("lambda").get_alias(FunctionName=outputs["FunctionName"],
                                               Name=outputs.get("AliasName", "live"))
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return {"version": alias["FunctionVersion"],
            "shifted": {v: round(float(w) * 100, 2) for v, w in weights.items()}}


def state(session: Any, outputs: dict[str, str], deployment: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The newest rollout of a model (or `deployment`, when given): deployment, status, traffic split, alarms, the
    error when it stopped."""
    if not has_rollout(outputs):
        return None
    deployment = deployment or latest_deployment(session.client("codedeploy"), outputs)
    if deployment is None:
        return {"status": "none", "traffic": traffic(session, outputs), "alarms": alarms_of(session, outputs)}
    current, target = versions_of(deployment)
    doc = {"deployment": deployment["deploymentId"], "status": deployment["status"], "from_version": current,
           "to_version": target, "traffic": traffic(session, outputs), "alarms": alarms_of(session, outputs),
           "messages": deployment.get("deploymentStatusMessages", [])[-5:]}
    error = deployment.get("errorInformation") or {}
    if error.get("code"):
        doc["error"] = f"{error['code']}: {error.get('message', '')}"
    if (deployment.get("rollbackInfo") or {}).get("rollbackDeploymentId"):
        doc["rolled_back_by"] = deployment["rollbackInfo"]["rollbackDeploymentId"]
    return doc


def describe(doc: dict[str, Any]) -> str:
    """One line for a rollout state."""
    t = doc["traffic"]
    split = ", ".join(f"{p:g}% on version {v}" for v, p in t["shifted"].items()) or "no split"
    alarms = ", ".join(f"{a['name']} {a['state']}" for a in doc.get("alarms", [])) or "no alarms"
    head = (f"{doc['status']} {doc.get('from_version', '')}->{doc.get('to_version', '')}"
            if doc.get("deployment") else "no rollout yet")
    line = f"{head}; alias on version {t['version']} ({split}); alarms: {alarms}"
    return line + (f"; {doc['error']}" if doc.get("error") else "")


def follow(session: Any, outputs: dict[str, str], say: Say, *, since: float = 0.0, timeout_s: float = 7200,
           poll_s: float = 2.0) -> dict[str, Any] | None:
    """Report the newest deployment (created after `since`) step by step until it ends (`cli/rollout_follow.py`)."""
    from .rollout_follow import follow as follow_reader
    from .rollout_follow import lambda_reader

    if not has_rollout(outputs):
        return None
    return follow_reader(session, lambda_reader(session, outputs), say, since=since, timeout_s=timeout_s,
                         poll_s=poll_s)


def rollback(session: Any, outputs: dict[str, str], say: Say, *, timeout_s: float = 300,
             poll_s: float = 0.5) -> dict[str, Any]:
    """Back to the previous version at once: stop the running deployment with auto-rollback (StopDeployment), or,
    when none runs, point the alias at the newest deployment's previous version without weights (UpdateAlias).
    Says which alarm went to ALARM since the newest deployment began and its value (the alarm history)."""
    if not has_rollout(outputs):
        raise CliError("this model has no [rollout] (strategy canary or linear): nothing to roll back through "
                       "CodeDeploy; deploy the previous model folder again")
    from .alarm_history import say_fired

    codedeploy = session.client("codedeploy")
    newest = latest_deployment(codedeploy, outputs)
    say_fired(session.client("cloudwatch"), alarms_of(session, outputs),
              newest["createTime"].timestamp() if newest else 0.0, say)
    running = latest_deployment(codedeploy, outputs, RUNNING)
    if running is not None:
        current, target = versions_of(running)
        codedeploy.stop_deployment(deploymentId=running["deploymentId"], autoRollbackEnabled=True)
        say(f"stopping deployment {running['deploymentId']} ({current}->{target}) with rollback")
        deadline = time.monotonic() + timeout_s
        while True:
            info = codedeploy.get_deployment(deploymentId=running["deploymentId"])["deploymentInfo"]
            if info["status"] in DONE:
                break
            if time.monotonic() > deadline:
                raise CliError(f"deployment {running['deploymentId']} still {info['status']} after {timeout_s:.0f}s")
            time.sleep(poll_s)
    else:
        last = latest_deployment(codedeploy, outputs)
        if last is None:
            raise CliError("no deployment to roll back: the model was never updated through CodeDeploy")
        current, target = versions_of(last)
        error = (last.get("errorInformation") or {}).get("message")
        if error:
            say(f"last deployment {last['deploymentId']} {last['status']}: {error}")
        session.client("lambda").update_alias(FunctionName=outputs["FunctionName"],
                                              Name=outputs.get("AliasName", "live"), FunctionVersion=current,
                                              RoutingConfig={"AdditionalVersionWeights": {}})
    doc = state(session, outputs) or {}
    say(f"rolled back: alias on version {doc.get('traffic', {}).get('version', current)}")
    return doc
