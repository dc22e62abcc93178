"""`[rollout]` in the synthesized templates of every target (the session's one synth, cdk-nag and cfn-lint run on
them in test_iam_and_nag.py): CodeDeploy traffic shifting with alarms and a pre-traffic check on Lambda, the
inference component's rolling update with auto-rollback on SageMaker; ECS refuses canary/linear (its rolling
update has the circuit breaker only)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match

from mlfn.infra.checks import resolve_target
from mlfn.infra.rollout import example_request
from mlfn.runtime.errors import SpecError
from mlfn.runtime.spec import load_spec

from .conftest import Synthesized


def _resources(synthesized: Synthesized, key: str, kind: str) -> dict[str, Any]:
    template = synthesized.templates[key]
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _alarm_metrics(synthesized: Synthesized, key: str) -> dict[str, dict[str, Any]]:
    """Rollout alarm logical id -> its properties."""
    return {k: r["Properties"] for k, r in _resources(synthesized, key, "AWS::CloudWatch::Alarm").items()
            if "Rollout" in k}


def test_all_at_once_adds_no_deployment_group(synthesized: Synthesized) -> None:
    assert not _resources(synthesized, "lam-default", "AWS::CodeDeploy::DeploymentGroup")
    assert not _alarm_metrics(synthesized, "lam-default")
    alias = next(iter(_resources(synthesized, "lam-default", "AWS::Lambda::Alias").values()))
    assert "UpdatePolicy" not in alias


def test_lambda_canary_is_a_codedeploy_deployment_with_alarms_and_a_pre_traffic_check(
        synthesized: Synthesized) -> None:
    template = synthesized.template("lam-canary")
    # A custom config: 20% first, the rest 2 minutes later.
    template.has_resource_properties("AWS::CodeDeploy::DeploymentConfig", {
        "ComputePlatform": "Lambda",
        "TrafficRoutingConfig": {"Type": "TimeBasedCanary",
                                 "TimeBasedCanary": {"CanaryPercentage": 20, "CanaryInterval": 2}}})
    alarms = _alarm_metrics(synthesized, "lam-canary")
    # 5xx rate (EMF ServerErrors / Requests), 5xx count, Lambda function errors, p99 and the user's metric.
    assert {a.get("MetricName") for a in alarms.values()} >= {"ServerErrors", "Errors", "Duration", "BadAnswers"}
    rate = next(a for a in alarms.values() if "Metrics" in a)
    assert next(m["Expression"] for m in rate["Metrics"] if "Expression" in m) == "100 * errors / requests"
    assert all(a.get("Period", 60) == 60 for a in alarms.values())
    p99 = next(a for a in alarms.values() if a.get("MetricName") == "Duration")
    assert (p99["ExtendedStatistic"], p99["Threshold"]) == ("p99", 400)
    user = next(a for a in alarms.values() if a.get("MetricName") == "BadAnswers")
    assert user["Dimensions"] == [{"Name": "Model", "Value": "lam-canary"}] and user["ExtendedStatistic"] == "p90"
    group = next(iter(_resources(synthesized, "lam-canary", "AWS::CodeDeploy::DeploymentGroup").values()))
    props = group["Properties"]
    assert props["AlarmConfiguration"]["Enabled"] is True
    assert len(props["AlarmConfiguration"]["Alarms"]) == len(alarms)
    assert set(props["AutoRollbackConfiguration"]["Events"]) == {
        "DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"}
    # CloudFormation hands the alias update to CodeDeploy, with the pre-traffic hook.
    alias = next(iter(_resources(synthesized, "lam-canary", "AWS::Lambda::Alias").values()))
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["BeforeAllowTrafficHook"] and update["DeploymentGroupName"]
    outputs = synthesized.templates["lam-canary"]["Outputs"]
    assert {"RolloutApplication", "RolloutDeploymentGroup"} <= set(outputs)
    assert "RolloutApplication" not in synthesized.templates["lam-default"]["Outputs"]
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "index.handler",
        "Environment": {"Variables": {"TARGET_VERSION": Match.any_value(), "EXAMPLE_PATH": "", "EXAMPLE": ""}}})


def test_lambda_linear_10_every_minute_is_codedeploys_predefined_config(synthesized: Synthesized) -> None:
    assert not _resources(synthesized, "lam-linear", "AWS::CodeDeploy::DeploymentConfig")
    group = next(iter(_resources(synthesized, "lam-linear", "AWS::CodeDeploy::DeploymentGroup").values()))
    assert group["Properties"]["DeploymentConfigName"] == "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"


def test_sagemaker_inference_component_rolls_with_auto_rollback(synthesized: Synthesized) -> None:
    component = next(iter(_resources(synthesized, "sm-rollout", "AWS::SageMaker::InferenceComponent").values()))
    config = component["Properties"]["DeploymentConfig"]
    policy = config["RollingUpdatePolicy"]
    # 60% is clamped to the 50% a batch may be at most; 90 minutes to the 3600 s bake SageMaker allows.
    assert policy["MaximumBatchSize"] == {"Type": "CAPACITY_PERCENT", "Value": 50}
    assert policy["WaitIntervalInSeconds"] == 3600
    alarms = _alarm_metrics(synthesized, "sm-rollout")
    assert len(config["AutoRollbackConfiguration"]["Alarms"]) == len(alarms) == 2  # 5xx rate, p99
    assert {a.get("MetricName") for a in alarms.values()} >= {"ModelLatency"}


@pytest.mark.parametrize("strategy", ["canary", "linear"])
def test_ecs_refuses_canary_and_linear_with_a_settings_error(
        make_model_dir: Callable[[str, str], Path], strategy: str) -> None:
    """ECS canary/linear needs an alternate target group and production listener rule mlfn does not build: the
    model is refused before any synth (it used to roll the service as a plain rolling update)."""
    from mlfn.infra.ecs_model import MlfnEcsGpuModel

    directory = make_model_dir(f"ecs-{strategy}", f'target = "ecs"\ngpu = true\n[rollout]\nstrategy = "{strategy}"\n')
    spec = load_spec(directory)
    with pytest.raises(SpecError) as caught:
        resolve_target(spec)
    assert caught.value.field == "rollout.strategy"
    message = str(caught.value)
    assert "alternate target group" in message and "production listener rule" in message
    assert "target lambda or sagemaker" in message and repr(strategy) in message
    with pytest.raises(SpecError):  # the construct a user's own app builds refuses it too
        MlfnEcsGpuModel(cdk.Stack(cdk.App(), "S"), "M", spec=spec)


def test_ecs_all_at_once_is_a_rolling_update_with_the_circuit_breaker(synthesized: Synthesized) -> None:
    service = next(iter(_resources(synthesized, "ecs-gpu", "AWS::ECS::Service").values()))
    deployment = service["Properties"]["DeploymentConfiguration"]
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert "Strategy" not in deployment and "Alarms" not in deployment  # no canary/linear strategy


def test_the_pre_traffic_check_sends_the_example_or_pings(tmp_path: Path) -> None:
    assert example_request(tmp_path, "iris") == ("", "")
    (tmp_path / "example.json").write_text(json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}, indent=2))
    assert example_request(tmp_path, "iris") == ("/v1/models/iris:predict", '{"instances":[[5.1,3.5,1.4,0.2]]}')
    (tmp_path / "example.json").write_text(json.dumps({"instances": [[0.0] * 784] * 2}))
    assert example_request(tmp_path, "iris") == ("", "")  # too large for the hook's environment
