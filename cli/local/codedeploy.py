"""The emulator's CodeDeploy for Lambda: a deployment shifts the alias's weights step by step and rolls back on alarm.

moto's CodeDeploy records applications, deployment groups and deployments but runs nothing (a deployment stays
`Created`; StopDeployment, CreateDeploymentConfig and PutLifecycleEventHookExecutionStatus do not exist;
errorInformation and rollbackInfo are always empty). `install()` adds them, and every Lambda deployment
(CreateDeployment with an AppSpec naming `AWS::Lambda::Function` Name, Alias, CurrentVersion, TargetVersion, as in
"AppSpec File example for an AWS Lambda deployment") runs on a thread as AWS runs it:

1. `InProgress`; the BeforeAllowTraffic hook, when the AppSpec names one, runs before any traffic moves (the
   emulator cannot run the inline hook: `SETTINGS.pre_traffic(function, version, hook)` does what it does, set by
   the control plane to `pre_traffic.checker`; without one the hook is recorded as skipped). A failed hook:
   `Failed`, `HOOK_EXECUTION_FAILURE`.
2. the traffic config (`TimeBasedCanary`: the percentage, then the rest after the interval; `TimeBasedLinear`: the
   percentage more every interval; `AllAtOnce`) sets `RoutingConfig.AdditionalVersionWeights` of the alias through
   Lambda's UpdateAlias (boto3), waits the interval, polling the deployment group's alarms (DescribeAlarms, boto3);
3. finally the alias points at the target version without weights: `Succeeded`.

An alarm in ALARM (the group's `alarmConfiguration`, when enabled) or StopDeployment stops it: `Stopped` with
`ALARM_ACTIVE` / `MANUAL_STOP`, and, when auto-rollback is on for that event (DEPLOYMENT_STOP_ON_ALARM,
DEPLOYMENT_STOP_ON_REQUEST, DEPLOYMENT_FAILURE), the alias goes back to the current version at once and a rollback
deployment (creator `codeDeployRollback`) is recorded in `rollbackInfo`. The error message names the alarm and the
StateReason CloudWatch gave it (its datapoints).

Time scale: `SETTINGS.time_scale` wall seconds stand for one AWS second (as `MLFN_ALARM_TIME_SCALE` for alarms);
every deployment says so in `deploymentStatusMessages`. `SETTINGS.endpoint_url` is the control plane's URL.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.codedeploy import responses as cd_responses
from moto.codedeploy.models import CodeDeployBackend, DeploymentInfo, codedeploy_backends
from moto.core.responses import ActionResult
from moto.core.utils import utcnow

from .alias_weights import check_routing

LOG = logging.getLogger("mlfn.local.codedeploy")
_PREDEFINED = re.compile(r"(?:CodeDeployDefault\.)?Lambda(?:Canary(\d+)Percent(\d+)Minutes?|"
                         r"Linear(\d+)PercentEvery(\d+)Minutes?|(AllAtOnce))$")


@dataclass
class Settings:
    endpoint_url: str = ""
    time_scale: float = 1.0
    pre_traffic: Callable[..., bool] | None = None  # (function, version, hook) -> the version answered the example
    poll_s: float = 0.02  # wall seconds between alarm polls (at most; a scaled AWS second if smaller)


SETTINGS = Settings()


@dataclass(frozen=True)
class TrafficRouting:
    """How a config moves traffic: `steps()` gives the additional version's weight at each step."""

    kind: str  # TimeBasedCanary | TimeBasedLinear | AllAtOnce
    percentage: int = 100
    interval_minutes: int = 0

    def steps(self) -> list[float]:
        """Weights of the target version, each held `interval_minutes` (1.0 is the final shift)."""
        if self.kind == "TimeBasedCanary":
            return [self.percentage / 100]
        if self.kind == "TimeBasedLinear":
            return [p / 100 for p in range(self.percentage, 100, self.percentage)]
        return []

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TrafficRouting:
        """From CreateDeploymentConfig's `trafficRoutingConfig`."""
        kind = config.get("type", "AllAtOnce")
        if kind == "TimeBasedCanary":
            canary = config["timeBasedCanary"]
            return cls(kind, int(canary["canaryPercentage"]), int(canary["canaryInterval"]))
        if kind == "TimeBasedLinear":
            linear = config["timeBasedLinear"]
            return cls(kind, int(linear["linearPercentage"]), int(linear["linearInterval"]))
        return cls("AllAtOnce")


CUSTOM_CONFIGS: dict[str, TrafficRouting] = {}


def routing_for(name: str) -> TrafficRouting:
    """A predefined Lambda config (`CodeDeployDefault.LambdaCanary10Percent5Minutes`, ...) or a custom one."""
    if name in CUSTOM_CONFIGS:
        return CUSTOM_CONFIGS[name]
    match = _PREDEFINED.match(name or "")
    if match is None:
        raise ValueError(f"unknown Lambda deployment configuration {name!r}")
    canary_p, canary_i, linear_p, linear_i, _ = match.groups()
    if canary_p:
        return TrafficRouting("TimeBasedCanary", int(canary_p), int(canary_i))
    if linear_p:
        return TrafficRouting("TimeBasedLinear", int(linear_p), int(linear_i))
    return TrafficRouting("AllAtOnce")


@dataclass
class LambdaTarget:
    function: str
    alias: str
    current: str
    target: str
    before_allow_traffic: str = ""

    @classmethod
    def from_revision(cls, revision: dict[str, Any]) -> LambdaTarget | None:
        content = ((revision or {}).get("appSpecContent") or {}).get("content")
        if not content:
            return None
        spec = json.loads(content)
        for resource in spec.get("Resources", []):
            for body in resource.values():
                if body.get("Type") == "AWS::Lambda::Function":
                    p = body["Properties"]
                    hooks = {k: v for h in spec.get("Hooks", []) for k, v in h.items()}
                    return cls(p["Name"], p["Alias"], str(p["CurrentVersion"]), str(p["TargetVersion"]),
                               hooks.get("BeforeAllowTraffic", ""))
        return None


@dataclass
class Run:
    """A running Lambda deployment (the thread's state; moto's DeploymentInfo holds what the API shows)."""

    deployment: DeploymentInfo
    backend: CodeDeployBackend
    target: LambdaTarget
    routing: TrafficRouting
    region: str
    stop_requested: threading.Event = field(default_factory=threading.Event)
    stop_rollback: bool = True
    weights: list[tuple[float, float]] = field(default_factory=list)  # (wall time, weight) as set
    thread: threading.Thread | None = None


RUNS: dict[str, Run] = {}


def _clients(region: str) -> tuple[Any, Any]:
    from .control_plane import client_environment

    env = client_environment(SETTINGS.endpoint_url)
    kwargs = {"endpoint_url": SETTINGS.endpoint_url, "region_name": region,
              "aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}
    return boto3.client("lambda", **kwargs), boto3.client("cloudwatch", **kwargs)


def _rollback_events(run: Run) -> set[str]:
    config = run.deployment.auto_rollback_configuration or run.deployment.deployment_group.auto_rollback_configuration
    config = config or {}
    return set(config.get("events", [])) if config.get("enabled") else set()


def _alarm_names(run: Run) -> list[str]:
    config: Any = run.deployment.deployment_group.alarm_configuration or {}
    if not isinstance(config, dict):
        config = {"enabled": config.enabled, "alarms": config.alarms}
    return [a["name"] for a in config.get("alarms", [])] if config.get("enabled") else []


def _say(run: Run, message: str) -> None:
    run.deployment.deployment_status_messages.append(message)
    LOG.info("deployment %s: %s", run.deployment.deployment_id, message)


def _set_weight(lam: Any, run: Run, weight: float) -> None:
    t = run.target
    weights = {t.target: round(weight, 4)} if 0 < weight < 1 else {}
    version = t.target if weight >= 1 else t.current
    check_routing(version, weights)
    lam.update_alias(FunctionName=t.function, Name=t.alias, FunctionVersion=version,
                     RoutingConfig={"AdditionalVersionWeights": weights})
    run.weights.append((time.time(), weight))
    _say(run, f"traffic: {round(weight * 100, 2):g}% on version {t.target}")


def _alarm_fired(cw: Any, names: list[str]) -> dict[str, Any] | None:
    if not names:
        return None
    for alarm in cw.describe_alarms(AlarmNames=names)["MetricAlarms"]:
        if alarm["StateValue"] == "ALARM":
            return dict(alarm)
    return None


def _finish(run: Run, status: str, code: str = "", message: str = "") -> None:
    d = run.deployment
    d.status, d.complete_time = status, utcnow()
    if code:
        d._mlfn_error = {"code": code, "message": message}  # type: ignore[attr-defined]
    _say(run, f"{status}" + (f": {message}" if message else ""))


def _roll_back(lam: Any, run: Run, event: str, reason: str) -> None:
    """Alias back on the current version at once, and a rollback deployment recorded, when `event` is enabled."""
    if event not in _rollback_events(run):
        _say(run, f"not rolled back ({event} is not an auto-rollback event): traffic stays where it is")
        return
    _set_weight(lam, run, 0.0)
    d = run.deployment
    rollback = DeploymentInfo(d.application, d.deployment_group, d.revision, d.deployment_config_name,
                              f"rollback of {d.deployment_id}: {reason}", None, None, None, None, None, None,
                              "codeDeployRollback")
    rollback.status, rollback.start_time, rollback.complete_time = "Succeeded", utcnow(), utcnow()
    run.backend.deployments[rollback.deployment_id] = rollback
    d._mlfn_rollback = {  # type: ignore[attr-defined]
        "rollbackDeploymentId": rollback.deployment_id, "rollbackMessage": reason}
    rollback._mlfn_rollback = {"rollbackTriggeringDeploymentId": d.deployment_id}  # type: ignore[attr-defined]


def _wait_step(cw: Any, run: Run, names: list[str], seconds: float) -> tuple[str, str] | None:
    """Hold the current weight `seconds` (wall); (event, reason) when an alarm fires or a stop is requested."""
    deadline = time.monotonic() + seconds
    while True:
        if run.stop_requested.is_set():
            return "DEPLOYMENT_STOP_ON_REQUEST", "stopped on request (StopDeployment)"
        alarm = _alarm_fired(cw, names)
        if alarm is not None:
            return "DEPLOYMENT_STOP_ON_ALARM", (f"alarm {alarm['AlarmName']} is in ALARM: "
                                                f"{alarm.get('StateReason', '')}")
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(left, SETTINGS.poll_s, max(0.001, SETTINGS.time_scale)))


def _run(run: Run) -> None:
    lam, cw = _clients(run.region)
    d, t = run.deployment, run.target
    d.status, d.start_time = "InProgress", utcnow()
    minute_s = 60 * SETTINGS.time_scale
    _say(run, f"emulator time scale {SETTINGS.time_scale:g}: one AWS minute takes {minute_s:g} s")
    if t.before_allow_traffic:
        if SETTINGS.pre_traffic is None:
            _say(run, f"BeforeAllowTraffic hook {t.before_allow_traffic} skipped: no invoker registered")
        elif not SETTINGS.pre_traffic(t.function, t.target, t.before_allow_traffic):
            _finish(run, "Failed", "HOOK_EXECUTION_FAILURE",
                    f"BeforeAllowTraffic hook {t.before_allow_traffic}: version {t.target} failed the check; "
                    "no traffic moved")
            return
        else:
            _say(run, f"BeforeAllowTraffic: version {t.target} answered the check")
    names = _alarm_names(run)
    for weight in run.routing.steps():
        _set_weight(lam, run, weight)
        stopped = _wait_step(cw, run, names, run.routing.interval_minutes * minute_s)
        if stopped is not None:
            event, reason = stopped
            code = "ALARM_ACTIVE" if event == "DEPLOYMENT_STOP_ON_ALARM" else "MANUAL_STOP"
            if event == "DEPLOYMENT_STOP_ON_REQUEST" and not run.stop_rollback:
                event = "none"
            _roll_back(lam, run, event, reason)
            _finish(run, "Stopped", code, reason)
            return
    _set_weight(lam, run, 1.0)
    _finish(run, "Succeeded")


def _start(backend: CodeDeployBackend, deployment_id: str) -> None:
    d = backend.deployments[deployment_id]
    if d.application.compute_platform != "Lambda":
        return
    target = LambdaTarget.from_revision(d.revision)
    if target is None:
        return
    run = Run(d, backend, target, routing_for(str(d.deployment_config_name)), backend.region_name)
    RUNS[deployment_id] = run

    def guarded() -> None:
        try:
            _run(run)
        except Exception as exc:  # the deployment fails with the reason instead of hanging InProgress
            LOG.exception("deployment %s failed", deployment_id)
            _finish(run, "Failed", "INTERNAL_ERROR", str(exc))

    run.thread = threading.Thread(target=guarded, name=f"mlfn-codedeploy-{deployment_id[:8]}", daemon=True)
    run.thread.start()


def stop(deployment_id: str, auto_rollback: bool = True) -> None:
    """StopDeployment: the running deployment stops at its next poll (and rolls back when asked and enabled)."""
    run = RUNS[deployment_id]
    run.stop_rollback = auto_rollback
    run.stop_requested.set()


_installed = False


def install() -> None:
    """Patch moto's CodeDeploy (idempotent): run Lambda deployments, StopDeployment, CreateDeploymentConfig,
    errorInformation and rollbackInfo in GetDeployment, alarmConfiguration in GetDeploymentGroup."""
    global _installed
    if _installed:
        return
    _installed = True
    original_create = CodeDeployBackend.create_deployment

    def create_deployment(self: CodeDeployBackend, *args: Any, **kwargs: Any) -> str:
        deployment_id: str = original_create(self, *args, **kwargs)
        _start(self, deployment_id)
        return deployment_id

    CodeDeployBackend.create_deployment = create_deployment  # type: ignore[method-assign]
    original_info = cd_responses._deployment_info

    def deployment_info(deployment: DeploymentInfo) -> dict[str, Any]:
        info: dict[str, Any] = original_info(deployment)
        info["errorInformation"] = getattr(deployment, "_mlfn_error", {})
        info["rollbackInfo"] = getattr(deployment, "_mlfn_rollback", {})
        return info

    cd_responses._deployment_info = deployment_info  # type: ignore[assignment]
    original_group_info = cd_responses._deployment_group_info

    def deployment_group_info(group: Any) -> dict[str, Any]:
        info: dict[str, Any] = original_group_info(group)
        config = group.alarm_configuration
        info["alarmConfiguration"] = (config if isinstance(config, dict) else
                                      {"enabled": config.enabled, "alarms": config.alarms} if config else {})
        return info

    cd_responses._deployment_group_info = deployment_group_info  # type: ignore[assignment]
    response = cd_responses.CodeDeployResponse

    def stop_deployment(self: Any) -> Any:
        deployment_id = self._get_param("deploymentId")
        run = RUNS.get(deployment_id)
        if run is None or run.deployment.status not in ("Created", "InProgress"):
            from moto.codedeploy.exceptions import DeploymentDoesNotExistException

            raise DeploymentDoesNotExistException(f"no running deployment {deployment_id}")
        stop(deployment_id, bool(self._get_param("autoRollbackEnabled", True)))
        return ActionResult({"status": "Pending", "statusMessage": "Stopping"})

    def create_deployment_config(self: Any) -> Any:
        name = self._get_param("deploymentConfigName")
        CUSTOM_CONFIGS[name] = TrafficRouting.from_config(self._get_param("trafficRoutingConfig") or {})
        return ActionResult({"deploymentConfigId": name})

    response.stop_deployment = stop_deployment  # type: ignore[attr-defined]
    response.create_deployment_config = create_deployment_config  # type: ignore[attr-defined]


def backend(account: str, region: str) -> CodeDeployBackend:
    return codedeploy_backends[account][region]
