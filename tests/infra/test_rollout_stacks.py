"""`[rollout]` in the synthesized templates of every target (the session's one synth, cdk-nag and cfn-lint run on
them in test_iam_and_nag.py): CodeDeploy traffic shifting with alarms and a pre-traffic check on Lambda, the
inference component's rolling update with auto-rollback on SageMaker, ECS's own CANARY/LINEAR deployment (alternate
target group, weighted production listener rule, infrastructure role) with the alarms rolling it back."""

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


def _ecs_service(synthesized: Synthesized, key: str) -> dict[str, Any]:
    (service,) = _resources(synthesized, key, "AWS::ECS::Service").values()
    props: dict[str, Any] = service["Properties"]
    return props


@pytest.mark.parametrize(("key", "strategy", "config", "bake"), [
    ("ecs-canary", "CANARY", {"CanaryConfiguration": {"CanaryPercent": 20, "CanaryBakeTimeInMinutes": 7}}, 7),
    ("ecs-linear", "LINEAR", {"LinearConfiguration": {"StepPercent": 25, "StepBakeTimeInMinutes": 3}}, 3),
])
def test_ecs_canary_and_linear_are_ecs_native_strategies_with_rollback_alarms(
        synthesized: Synthesized, key: str, strategy: str, config: dict[str, Any], bake: int) -> None:
    deployment = _ecs_service(synthesized, key)["DeploymentConfiguration"]
    assert deployment["Strategy"] == strategy
    assert {k: deployment[k] for k in config} == config
    assert deployment["BakeTimeInMinutes"] == bake  # interval_minutes: both revisions run that long at 100%
    assert "DeploymentCircuitBreaker" not in deployment  # rolling updates only
    alarms = _alarm_metrics(synthesized, key)
    assert deployment["Alarms"]["Enable"] is True and deployment["Alarms"]["Rollback"] is True
    assert sorted(a["Ref"] for a in deployment["Alarms"]["AlarmNames"]) == sorted(
        k for k in _resources(synthesized, key, "AWS::CloudWatch::Alarm") if "Rollout" in k)
    # ECS picks the group of the new revision at deploy time: an alarm reads the whole ALB, or there is one per group.
    groups = set(_resources(synthesized, key, "AWS::ElasticLoadBalancingV2::TargetGroup"))
    per_group: set[str] = set()
    for alarm in alarms.values():
        metrics = [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m] or [alarm]
        for metric in metrics:
            assert metric["Namespace"] == "AWS/ApplicationELB"
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            assert set(dims) in ({"LoadBalancer"}, {"LoadBalancer", "TargetGroup"})
            if "TargetGroup" in dims:
                per_group.add(dims["TargetGroup"]["Fn::GetAtt"][0])
    assert per_group == groups


def test_ecs_canary_alarms_follow_the_rollout_settings(synthesized: Synthesized) -> None:
    alarms = _alarm_metrics(synthesized, "ecs-canary")
    # The 5xx rate: one alarm per target group, each its own group's errors over its own requests (a canary at 20 %
    # failing a third of its calls is 33 % there, 6.7 % of the whole ALB).
    rates = [a for a in alarms.values() if "Metrics" in a]
    assert len(rates) == 2 and all(a["Threshold"] == 5 for a in rates)
    for rate in rates:
        queries = {m["Id"]: m for m in rate["Metrics"]}
        assert queries["expr_1"]["Expression"] == "100 * errors / requests"
        groups = {json.dumps(d["Value"]) for q in ("errors", "requests")
                  for d in queries[q]["MetricStat"]["Metric"]["Dimensions"] if d["Name"] == "TargetGroup"}
        assert len(groups) == 1  # errors and requests of the same group
    names = {a.get("MetricName") for a in alarms.values()}
    assert names >= {"HTTPCode_Target_5XX_Count", "TargetResponseTime"}
    count = next(a for a in alarms.values() if a.get("MetricName") == "HTTPCode_Target_5XX_Count")
    assert (count["Threshold"], count["Period"]) == (5, 60)
    p99 = next(a for a in alarms.values() if a.get("MetricName") == "TargetResponseTime")
    assert (p99["ExtendedStatistic"], p99["Threshold"]) == ("p99", 2.5)  # p99_ms in the metric's seconds


@pytest.mark.parametrize("key", ["ecs-canary", "ecs-linear"])
def test_ecs_traffic_shift_has_an_alternate_group_a_weighted_rule_and_the_infrastructure_role(
        synthesized: Synthesized, key: str) -> None:
    groups = _resources(synthesized, key, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert len(groups) == 2 and {g["Properties"]["TargetType"] for g in groups.values()} == {"instance"}
    (lb,) = _ecs_service(synthesized, key)["LoadBalancers"]
    advanced = lb["AdvancedConfiguration"]
    primary, alternate = lb["TargetGroupArn"]["Ref"], advanced["AlternateTargetGroupArn"]["Ref"]
    assert {primary, alternate} == set(groups)
    # The production listener RULE (ECS rewrites its weights), forwarding to both groups: 100 / 0 to start.
    (rule_id, rule), = _resources(synthesized, key, "AWS::ElasticLoadBalancingV2::ListenerRule").items()
    assert advanced["ProductionListenerRule"] == {"Ref": rule_id}
    (action,) = rule["Properties"]["Actions"]
    assert action["Type"] == "forward"
    weights = {g["TargetGroupArn"]["Ref"]: g["Weight"] for g in action["ForwardConfig"]["TargetGroups"]}
    assert weights == {primary: 100, alternate: 0}
    assert rule["Properties"]["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}]
    # The listener itself only forwards (ECS fails a deployment on a listener mixing forward and other actions).
    (listener,) = _resources(synthesized, key, "AWS::ElasticLoadBalancingV2::Listener").values()
    assert [a["Type"] for a in listener["Properties"]["DefaultActions"]] == ["forward"]
    # The infrastructure role: trusted by ECS, AWS's managed policy for load balancers, nothing else.
    role_id = advanced["RoleArn"]["Fn::GetAtt"][0]
    role = synthesized.templates[key]["Resources"][role_id]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ecs.amazonaws.com"} and statement["Action"] == "sts:AssumeRole"
    (policy,) = role["ManagedPolicyArns"]
    assert policy["Fn::Join"][1][-1] == ":iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"
    assert "Policies" not in role
    # ECS checks at service creation that both groups belong to the load balancer: the rule exists first.
    service = next(iter(_resources(synthesized, key, "AWS::ECS::Service").values()))
    assert rule_id in service["DependsOn"]


@pytest.mark.parametrize("key", ["ecs-canary", "ecs-linear", "ecs-gpu", "ecs-batch"])
def test_ecs_target_groups_match_the_tasks_network_mode(synthesized: Synthesized, key: str) -> None:
    """Target groups of tasks in `awsvpc` mode must be `ip` ("AWS::ECS::Service LoadBalancer"; the blue/green,
    linear and canary pages ask for `ip` "when you use the awsvpc network mode"); mlfn's GPU tasks use `bridge`
    with dynamic host ports, which ECS registers as instance-and-port targets: both groups (primary and, for a
    canary/linear service, the alternate) are `instance`, and the service places tasks through its EC2 capacity
    provider (the linear/canary console procedure offers a capacity provider strategy)."""
    (task,) = _resources(synthesized, key, "AWS::ECS::TaskDefinition").values()
    mode = task["Properties"]["NetworkMode"]
    groups = _resources(synthesized, key, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    expected = {"awsvpc": "ip", "bridge": "instance", "host": "instance"}[mode]
    assert {g["Properties"]["TargetType"] for g in groups} == {expected}
    assert mode == "bridge"
    service = _ecs_service(synthesized, key)
    (strategy,) = service["CapacityProviderStrategy"]
    assert "LaunchType" not in service and strategy["Weight"] == 1


def test_ecs_rollout_scaling_reads_the_whole_alb_whichever_group_serves(synthesized: Synthesized) -> None:
    # ALBRequestCountPerTarget names one target group; after every second canary/linear deployment production is on
    # the other one. Requests of the whole ALB per running task stay right; the 503 scale-out alarm already was.
    policies = _resources(synthesized, "ecs-canary", "AWS::ApplicationAutoScaling::ScalingPolicy")
    (tracking,) = (p["Properties"]["TargetTrackingScalingPolicyConfiguration"] for p in policies.values()
                   if p["Properties"]["PolicyType"] == "TargetTrackingScaling")
    assert "PredefinedMetricSpecification" not in tracking and tracking["TargetValue"] == 40
    queries = {q["Id"]: q for q in tracking["CustomizedMetricSpecification"]["Metrics"]}
    assert queries["per_task"]["Expression"] == "requests / tasks" and queries["per_task"]["ReturnData"] is True
    requests = queries["requests"]["MetricStat"]
    assert (requests["Metric"]["MetricName"], requests["Stat"]) == ("RequestCount", "Sum")
    assert [d["Name"] for d in requests["Metric"]["Dimensions"]] == ["LoadBalancer"]
    tasks = queries["tasks"]["MetricStat"]["Metric"]
    assert (tasks["Namespace"], tasks["MetricName"]) == ("ECS/ContainerInsights", "RunningTaskCount")
    assert [d["Name"] for d in tasks["Dimensions"]] == ["ClusterName", "ServiceName"]
    for k, alarm in _resources(synthesized, "ecs-canary", "AWS::CloudWatch::Alarm").items():
        if "RolloutErrorRate" not in k:  # only the per-group rate pair names a target group
            assert "TargetGroup" not in json.dumps(alarm), k
    # all_at_once keeps its one target group and the predefined per-target metric.
    default = _resources(synthesized, "ecs-gpu", "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert any("PredefinedMetricSpecification" in p["Properties"].get("TargetTrackingScalingPolicyConfiguration", {})
               for p in default.values())
    assert not _resources(synthesized, "ecs-gpu", "AWS::ElasticLoadBalancingV2::ListenerRule")


@pytest.mark.parametrize(("rollout", "field", "words"), [
    ('strategy = "linear"\npercent = 2', "rollout.percent", "3.0 to 100.0"),
    ('strategy = "canary"\ninterval_minutes = 1441', "rollout.interval_minutes", "0 to 1440"),
])
def test_ecs_refuses_what_ecs_linear_and_canary_do_not_take(
        make_model_dir: Callable[[str, str], Path], rollout: str, field: str, words: str) -> None:
    from mlfn.infra.ecs_model import MlfnEcsGpuModel

    name = f"ecs-bad-{field.split('.')[1].replace('_', '-')}"
    directory = make_model_dir(name, f'target = "ecs"\ngpu = true\n[rollout]\n{rollout}\n')
    spec = load_spec(directory)
    with pytest.raises(SpecError) as caught:
        resolve_target(spec)
    assert caught.value.field == field and words in str(caught.value)
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
