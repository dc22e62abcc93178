"""The emulator's alarm evaluator (`mlfn.cli.local.alarms`) through boto3 only: alarms in moto's CloudWatch are
evaluated over metric data with CloudWatch's semantics and their step-scaling actions scale what the emulator holds.

The evaluator runs at a time scale of 0.02 here: a 60 s period and the one-minute evaluation take 1.2 s.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlfn.cli.local.control_plane import ControlPlane

SCALE = 0.02  # as conftest's ALARM_SCALE (fast_alarms)
MINUTE_S = 60 * SCALE
ROOT = Path(__file__).resolve().parents[2]


def _ecs_service(ecs: Any, desired: int) -> tuple[str, str]:
    cluster, service = f"c-{uuid.uuid4().hex[:8]}", "svc"
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(family="t", containerDefinitions=[{"name": "m", "image": "x", "memory": 128}])
    ecs.create_service(cluster=cluster, serviceName=service, taskDefinition="t", desiredCount=desired)
    return cluster, service


def _desired(ecs: Any, cluster: str, service: str) -> int:
    return int(ecs.describe_services(cluster=cluster, services=[service])["services"][0]["desiredCount"])


def _state(cw: Any, name: str) -> str:
    return str(cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"])


def _put(cw: Any, namespace: str, name: str, dimensions: list[dict[str, str]], value: float, seconds: float) -> None:
    """One datapoint every 0.3 s (four per scaled period) from now for `seconds`: the metric keeps reporting."""
    now = dt.datetime.now(dt.UTC)
    points = [{"MetricName": name, "Dimensions": dimensions, "Value": value,
               "Timestamp": now + dt.timedelta(seconds=0.3 * i)} for i in range(int(seconds / 0.3) + 1)]
    for start in range(0, len(points), 500):
        cw.put_metric_data(Namespace=namespace, MetricData=points[start:start + 500])


def test_alarm_in_alarm_runs_its_step_action_again_every_evaluation(fast_alarms: Callable[[int], None]) -> None:
    ecs, aas, cw = boto3.client("ecs"), boto3.client("application-autoscaling"), boto3.client("cloudwatch")
    cluster, service = _ecs_service(ecs, desired=0)
    resource = f"service/{cluster}/{service}"
    aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=resource,
                                 ScalableDimension="ecs:service:DesiredCount", MinCapacity=0, MaxCapacity=4)
    policy = aas.put_scaling_policy(
        PolicyName="add-one", ServiceNamespace="ecs", ResourceId=resource,
        ScalableDimension="ecs:service:DesiredCount", PolicyType="StepScaling",
        StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity", "Cooldown": 0,
                                        "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]},
    )["PolicyARN"]
    dims = [{"Name": "Queue", "Value": cluster}]
    cw.put_metric_alarm(AlarmName=f"{cluster}-backlog", Namespace="Test/Alarms", MetricName="Backlog",
                        Dimensions=dims, Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching",
                        AlarmActions=[policy])
    _put(cw, "Test/Alarms", "Backlog", dims, 5, seconds=MINUTE_S * 8)
    fast_alarms(1)
    counts = []
    for _ in range(4):  # the alarm stays in ALARM: +1 at every evaluation, not only on the transition
        fast_alarms(1)
        counts.append(_desired(ecs, cluster, service))
        assert _state(cw, f"{cluster}-backlog") == "ALARM"
    # A slow machine may see two evaluations between two readings, so each step is checked against the
    # evaluations that ran, not against one.
    assert counts[-1] == 4 and all(b >= a for a, b in itertools.pairwise(counts)), counts
    assert counts[0] < 4, counts  # it grew while the alarm stayed in ALARM (a transition-only action stops at 1)...
    fast_alarms(1)
    assert _desired(ecs, cluster, service) == 4  # ...and stops at the target's MaxCapacity


def test_scale_out_cooldown_counts_what_the_last_scale_out_added(fast_alarms: Callable[[int], None]) -> None:
    ecs, aas, cw = boto3.client("ecs"), boto3.client("application-autoscaling"), boto3.client("cloudwatch")
    cluster, service = _ecs_service(ecs, desired=0)
    resource = f"service/{cluster}/{service}"
    aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=resource,
                                 ScalableDimension="ecs:service:DesiredCount", MinCapacity=0, MaxCapacity=10)
    policy = _step_policy(aas, "slow", resource, "ecs:service:DesiredCount", "ecs", {
        "AdjustmentType": "ChangeInCapacity", "Cooldown": 90,
        "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]})
    dims = [{"Name": "Queue", "Value": cluster}]
    cw.put_metric_alarm(AlarmName=f"{cluster}-slow", Namespace="Test/Alarms", MetricName="Backlog",
                        Dimensions=dims, Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanOrEqualToThreshold", AlarmActions=[policy])
    _put(cw, "Test/Alarms", "Backlog", dims, 5, seconds=MINUTE_S * 8)
    fast_alarms(1)
    counts = []
    for _ in range(5):  # every evaluation runs the policy; within 90 s of a +1, +1 from before it changes nothing
        fast_alarms(1)
        counts.append(_desired(ecs, cluster, service))
    steps = [b - a for a, b in itertools.pairwise(counts)]
    assert set(steps) <= {0, 1} and 1 in steps and all(a + b < 2 for a, b in itertools.pairwise(steps)), counts


def test_missing_data_is_treated_per_treat_missing_data(fast_alarms: Callable[[int], None]) -> None:
    cw = boto3.client("cloudwatch")
    prefix = uuid.uuid4().hex[:8]
    for treat in ("breaching", "notBreaching", "ignore", "missing"):
        cw.put_metric_alarm(AlarmName=f"{prefix}-{treat}", Namespace="Test/Alarms", MetricName="Silent",
                            Dimensions=[{"Name": "Id", "Value": prefix}], Statistic="Sum", Period=60,
                            EvaluationPeriods=2, DatapointsToAlarm=2, Threshold=1,
                            ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData=treat)
    fast_alarms(1)
    assert {t: _state(cw, f"{prefix}-{t}") for t in ("breaching", "notBreaching", "ignore", "missing")} == {
        "breaching": "ALARM", "notBreaching": "OK", "ignore": "INSUFFICIENT_DATA", "missing": "INSUFFICIENT_DATA"}
    for treat in ("ignore", "missing"):  # ignore keeps whatever state the alarm is in; missing has no data
        cw.set_alarm_state(AlarmName=f"{prefix}-{treat}", StateValue="ALARM", StateReason="test")
    fast_alarms(1)
    assert _state(cw, f"{prefix}-ignore") == "ALARM"
    assert _state(cw, f"{prefix}-missing") == "INSUFFICIENT_DATA"
    # With data in only some periods, ignore and missing count the periods that have data: 2 breaching of 2 needed.
    _put(cw, "Test/Alarms", "Silent", [{"Name": "Id", "Value": prefix}], 3, seconds=MINUTE_S * 4)
    fast_alarms(3)
    assert {t: _state(cw, f"{prefix}-{t}") for t in ("breaching", "notBreaching", "ignore", "missing")} == {
        "breaching": "ALARM", "notBreaching": "ALARM", "ignore": "ALARM", "missing": "ALARM"}


def _rate_alarm(cw: Any, name: str, dimension: str, threshold: float) -> None:
    """mlfn's default 5xx rate alarm, as infra/rollout.py synthesizes it: `100 * errors / requests` > threshold."""
    def stat(metric: str) -> dict[str, Any]:
        return {"Metric": {"Namespace": "Test/Rate", "MetricName": metric,
                           "Dimensions": [{"Name": "Fn", "Value": dimension}]}, "Period": 60, "Stat": "Sum"}
    cw.put_metric_alarm(AlarmName=name, EvaluationPeriods=1, DatapointsToAlarm=1, Threshold=threshold,
                        ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
                        Metrics=[{"Id": "expr", "Expression": "100 * errors / requests", "ReturnData": True},
                                 {"Id": "errors", "MetricStat": stat("ServerErrors"), "ReturnData": False},
                                 {"Id": "requests", "MetricStat": stat("Requests"), "ReturnData": False}])


def test_metric_math_rate_alarm_fires_above_threshold_and_stays_ok_below(
        fast_alarms: Callable[[int], None]) -> None:
    cw = boto3.client("cloudwatch")
    prefix = uuid.uuid4().hex[:8]
    for case, errors in (("bad", 3.0), ("good", 0.5)):  # 30 % and 5 % of 10 requests per datapoint
        _rate_alarm(cw, f"{prefix}-{case}", f"{prefix}-{case}", threshold=10)
        dims = [{"Name": "Fn", "Value": f"{prefix}-{case}"}]
        _put(cw, "Test/Rate", "Requests", dims, 10, seconds=MINUTE_S * 3)
        _put(cw, "Test/Rate", "ServerErrors", dims, errors, seconds=MINUTE_S * 3)
    fast_alarms(2)
    bad = cw.describe_alarms(AlarmNames=[f"{prefix}-bad"])["MetricAlarms"][0]
    assert bad["StateValue"] == "ALARM", bad["StateReason"]
    assert "30" in bad["StateReason"]  # the expression's value, not a raw count
    assert _state(cw, f"{prefix}-good") == "OK"


def test_metric_math_alarm_with_no_requests_is_missing_data_not_a_division_error(
        fast_alarms: Callable[[int], None]) -> None:
    cw = boto3.client("cloudwatch")
    name = f"{uuid.uuid4().hex[:8]}-idle"
    _rate_alarm(cw, name, name, threshold=10)
    _put(cw, "Test/Rate", "Requests", [{"Name": "Fn", "Value": name}], 0, seconds=MINUTE_S * 2)
    fast_alarms(2)  # 0 errors / 0 requests: no datapoint, treated as notBreaching
    alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert alarm["StateValue"] == "OK" and "missing" in alarm["StateReason"], alarm["StateReason"]


def _step_policy(aas: Any, name: str, resource: str, dimension: str, namespace: str,
                 config: dict[str, Any]) -> str:
    return str(aas.put_scaling_policy(PolicyName=name, ServiceNamespace=namespace, ResourceId=resource,
                                      ScalableDimension=dimension, PolicyType="StepScaling",
                                      StepScalingPolicyConfiguration=config)["PolicyARN"])


def test_step_bounds_percent_change_and_target_bounds_on_inference_component_copies(
        control_plane: ControlPlane, fast_alarms: Callable[[int], None]) -> None:
    sm, aas, cw = boto3.client("sagemaker"), boto3.client("application-autoscaling"), boto3.client("cloudwatch")
    prefix = uuid.uuid4().hex[:8]
    role = "arn:aws:iam::123456789012:role/mlfn-sagemaker"
    sm.create_model(ModelName=f"{prefix}-model", ExecutionRoleArn=role,
                    PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris:1"})
    sm.create_endpoint_config(EndpointConfigName=f"{prefix}-config", ExecutionRoleArn=role, ProductionVariants=[{
        "VariantName": "AllTraffic", "InstanceType": "ml.g5.xlarge", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=f"{prefix}-ep", EndpointConfigName=f"{prefix}-config")
    dimension = "sagemaker:inference-component:DesiredCopyCount"
    scaled = {}
    for name, copies, operator, value, config in (
        # 25 is 15 above the threshold of 10: the second step (+100%), not the first (+50%); then MaxCapacity.
        ("up", 4, "GreaterThanOrEqualToThreshold", 25, {
            "AdjustmentType": "PercentChangeInCapacity", "Cooldown": 0, "StepAdjustments": [
                {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 50},
                {"MetricIntervalLowerBound": 10, "ScalingAdjustment": 100}]}),
        # -25% of 10 is 2.5 copies: rounded toward zero (2), raised to MinAdjustmentMagnitude (3); then MinCapacity.
        ("down", 10, "LessThanThreshold", 1, {
            "AdjustmentType": "PercentChangeInCapacity", "Cooldown": 0, "MinAdjustmentMagnitude": 3,
            "StepAdjustments": [{"MetricIntervalUpperBound": 0, "ScalingAdjustment": -25}]}),
    ):
        component = f"{prefix}-{name}"
        sm.create_inference_component(
            InferenceComponentName=component, EndpointName=f"{prefix}-ep", VariantName="AllTraffic",
            Specification={"ModelName": f"{prefix}-model",
                           "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 1024}},
            RuntimeConfig={"CopyCount": copies})
        resource = f"inference-component/{component}"
        aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=dimension,
                                     MinCapacity=1, MaxCapacity=10)
        policy = _step_policy(aas, name, resource, dimension, "sagemaker", config)
        dims = [{"Name": "Component", "Value": component}]
        cw.put_metric_alarm(AlarmName=component, Namespace="Test/Alarms", MetricName="Load", Dimensions=dims,
                            Statistic="Average", Period=60, EvaluationPeriods=1, Threshold={"up": 10, "down": 5}[name],
                            ComparisonOperator=operator, AlarmActions=[policy])
        _put(cw, "Test/Alarms", "Load", dims, value, seconds=MINUTE_S * 6)
        scaled[name] = component
    fast_alarms(5)
    runs = control_plane.alarms.actions_run
    assert [c for a, _, c in runs if a == scaled["up"]][:2] == [8, 10]
    assert [c for a, _, c in runs if a == scaled["down"]][:3] == [7, 4, 1]
    copies = {n: sm.describe_inference_component(InferenceComponentName=c)["RuntimeConfig"]["DesiredCopyCount"]
              for n, c in scaled.items()}
    assert copies == {"up": 10, "down": 1}


def test_breaching_missing_data_takes_the_open_step_on_provisioned_concurrency(
        fast_alarms: Callable[[int], None]) -> None:
    iam, lam = boto3.client("iam"), boto3.client("lambda")
    aas, cw = boto3.client("application-autoscaling"), boto3.client("cloudwatch")
    name = f"warm-{uuid.uuid4().hex[:8]}"
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam.create_function(FunctionName=name, PackageType="Image", Role=role,
                        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris:1"})
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=lam.publish_version(FunctionName=name)["Version"])
    resource, dimension = f"function:{name}:live", "lambda:function:ProvisionedConcurrency"
    aas.register_scalable_target(ServiceNamespace="lambda", ResourceId=resource, ScalableDimension=dimension,
                                 MinCapacity=0, MaxCapacity=5)
    policy = _step_policy(aas, "warm", resource, dimension, "lambda", {
        "AdjustmentType": "ExactCapacity", "StepAdjustments": [
            {"MetricIntervalLowerBound": -10, "MetricIntervalUpperBound": 0, "ScalingAdjustment": 1},
            {"MetricIntervalUpperBound": -10, "ScalingAdjustment": 3}]})
    cw.put_metric_alarm(AlarmName=name, Namespace="Test/Alarms", MetricName="Quiet", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=20, ComparisonOperator="LessThanThreshold",
                        TreatMissingData="breaching", AlarmActions=[policy])
    fast_alarms(2)
    assert _state(cw, name) == "ALARM"
    config = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert config["RequestedProvisionedConcurrentExecutions"] == 3


def test_bad_time_scale_is_one_line_error(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "MLFN_ALARM_TIME_SCALE": "fast"}
    result = subprocess.run([sys.executable, "-m", "mlfn.cli.local.control_plane", "--port", "0", "--state-dir",
                             str(tmp_path)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "MLFN_ALARM_TIME_SCALE must be a number above 0" in result.stderr and "'fast'" in result.stderr


ECS_TOML = """name = "idle-ecs"
target = "ecs"
gpu = true
[ecs]
instance_type = "g5.xlarge"
gpus = 1
min_tasks = 0
max_tasks = 3
idle_minutes = 2
"""
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfn/idle@sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def ecs_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """mlfn's ECS stack for a model that idles after 2 minutes (synthesized once: jsii takes seconds)."""
    from mlfn.infra.synth import synth_model

    model = tmp_path_factory.mktemp("idle-ecs")
    shutil.copyfile(ROOT / "functions" / "iris" / "model.onnx", model / "model.onnx")
    (model / "mlfn.toml").write_text(ECS_TOML, encoding="utf-8")
    return synth_model(model, image_uri=IMAGE, outdir=tmp_path_factory.mktemp("cdk.out")).read_text()


def test_a_templates_metric_math_alarm_keeps_its_metrics_and_fires(fast_alarms: Callable[[int], None],
                                                                   create_stack: Callable[..., Any]) -> None:
    """The rate alarm in the shape CDK synthesizes it (`cw.MathExpression` in infra/rollout.py), through CFN."""
    prefix = uuid.uuid4().hex[:8]

    def query(query_id: str, metric: str) -> dict[str, Any]:
        return {"Id": query_id, "ReturnData": False, "MetricStat": {"Period": 60, "Stat": "Sum", "Metric": {
            "Namespace": "Test/Rate", "MetricName": metric, "Dimensions": [{"Name": "Fn", "Value": prefix}]}}}
    template = {"Resources": {"Rate": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmName": f"{prefix}-rate", "ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1, "Threshold": 10, "TreatMissingData": "notBreaching",
        "Metrics": [{"Id": "expr_1", "Expression": "100 * errors / requests", "ReturnData": True},
                    query("errors", "ServerErrors"), query("requests", "Requests")]}}},
        "Outputs": {"Alarm": {"Value": {"Ref": "Rate"}}}}
    cw = boto3.client("cloudwatch")
    create_stack(f"rate-{prefix}", json.dumps(template))
    alarm = cw.describe_alarms(AlarmNames=[f"{prefix}-rate"])["MetricAlarms"][0]
    assert [m["Id"] for m in alarm["Metrics"]] == ["expr_1", "errors", "requests"]
    dims = [{"Name": "Fn", "Value": prefix}]
    _put(cw, "Test/Rate", "Requests", dims, 10, seconds=MINUTE_S * 3)
    _put(cw, "Test/Rate", "ServerErrors", dims, 2, seconds=MINUTE_S * 3)
    fast_alarms(2)
    assert _state(cw, f"{prefix}-rate") == "ALARM"  # 20 % > 10 %


def test_ecs_template_idles_to_zero_and_scales_from_zero_to_exactly_one(
        fast_alarms: Callable[[int], None], ecs_template: str, create_stack: Callable[..., Any]) -> None:
    ecs, cw = boto3.client("ecs"), boto3.client("cloudwatch")
    outputs, resources = create_stack(f"idle-ecs-{uuid.uuid4().hex[:6]}", ecs_template)
    cluster, service = outputs["ClusterName"], outputs["ServiceName"]
    (idle,) = (v for k, v in resources.items() if "ScaleInWhenIdleAlarm" in k)
    (wake,) = (v for k, v in resources.items() if "ScaleOutFromZeroAlarm" in k)
    alarms = {a["AlarmName"]: a for a in cw.describe_alarms(AlarmNames=[idle, wake])["MetricAlarms"]}
    front, alb = alarms[idle], alarms[wake]
    ecs.update_service(cluster=cluster, service=service, desiredCount=1)  # the one task a new service starts

    # No request for idle_minutes (2): the idle alarm goes to ALARM and sets the service to 0 tasks.
    fast_alarms(4)
    assert _state(cw, idle) == "ALARM" and _desired(ecs, cluster, service) == 0

    # Requests arrive at the front while no task serves: the ALB answers 503 (its RequestCount would stay
    # unreported), the HTTP API counts every request. Scale from zero sets exactly one task, and it stays one
    # while the task boots: the idle alarm is not in ALARM, and the 503 alarm's repeated action asks for one again.
    _put(cw, front["Namespace"], front["MetricName"], front["Dimensions"], 3, seconds=MINUTE_S * 7)
    _put(cw, alb["Namespace"], alb["MetricName"], alb["Dimensions"], 3, seconds=MINUTE_S * 7)
    fast_alarms(1)
    seen = []
    for _ in range(4):
        fast_alarms(1)
        seen.append((_state(cw, idle), _state(cw, wake), _desired(ecs, cluster, service)))
    assert seen == [("OK", "ALARM", 1)] * 4
