"""Safe rollouts in the emulator, through boto3 only: CodeDeploy deployments (`mlfn.cli.local.codedeploy`) shift the
`live` alias's weights step by step under steady load and roll back when an alarm, evaluated over the metrics the
sandboxes sent (`mlfn.cli.local.metrics_sink`), fires.

Calls go to mlfn's real Lambda handler of the version the alias's weights pick (GetAlias), in this process: the
gateway's weighted routing is another branch's work. Time scale 0.01: an AWS minute takes 0.6 s.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlfn.cli.local import codedeploy
from mlfn.cli.local.alias_weights import RoutingError, check_routing, choose, pick_version
from mlfn.cli.local.metrics_sink import Invocation, MetricsSink, emf_datums, lambda_datums

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.rollout_canary import (  # noqa: E402 - the repository root must be importable first
    BAD_HOOK,
    SLOW_HOOK,
    Function,
    Load,
    create_function,
    errors_alarm,
    example_check,
    figures,
    handler_for,
    latency_alarm,
    model_versions,
    rate_alarm,
    start_deployment,
    wait_done,
)

SCALE = 0.01
MINUTE_S = 60 * SCALE


@pytest.fixture
def aws(rollout_aws: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The emulator at time scale 0.01 with a running metrics sink."""
    sink = MetricsSink(rollout_aws["cloudwatch"]).start()
    yield {**rollout_aws, "sink": sink}
    sink.stop()


def _rollout(aws: dict[str, Any], tmp_path: Path, *, bad: bool, routing: dict[str, Any],
             example_fails: bool = False, hook: str = BAD_HOOK, p99_ms: float = 400,
             rate_percent: float | None = None) -> tuple[Function, Load, str, dict[str, Any]]:
    """Deploy v2 over v1 under load at 150 requests/s; returns when the deployment ended (plus 0.3 s of load)."""
    fn = create_function(aws["lambda"], aws["iam"], f"ro-{uuid.uuid4().hex[:8]}")
    v1_dir, v2_dir = model_versions(tmp_path, bad=bad, hook=hook)
    if example_fails:  # 511 % 3 == 1: the bad hook fails this example
        (v2_dir / "example.json").write_text('{"instances": [[5.11, 3.5, 1.4, 0.2]]}')
    handlers = {fn.v1: handler_for(v1_dir, aws["sink"]), fn.v2: handler_for(v2_dir, aws["sink"])}
    codedeploy.SETTINGS.pre_traffic = example_check(handlers, {fn.v1: v1_dir, fn.v2: v2_dir})
    alarms = [f"{fn.name}-5xx", f"{fn.name}-p99"]
    if rate_percent is None:
        errors_alarm(aws["cloudwatch"], alarms[0], 2)
    else:  # the default rate alarm (metric math) instead of the count alarm
        rate_alarm(aws["cloudwatch"], alarms[0], rate_percent)
    latency_alarm(aws["cloudwatch"], alarms[1], fn.name, p99_ms)
    load = Load(aws["lambda"], fn, handlers, aws["sink"], rate=150)
    worker = threading.Thread(target=load.run, args=(3000, 20), daemon=True)
    worker.start()
    try:
        deployment = start_deployment(aws["codedeploy"], fn, routing, alarms, hook="pre-traffic")
        info = wait_done(aws["codedeploy"], deployment, 15)
        time.sleep(0.3)
    finally:
        load.stop.set()
        worker.join(timeout=10)
    return fn, load, deployment, info


CANARY = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 20, "canaryInterval": 1}}
LINEAR = {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 25, "linearInterval": 1}}


@pytest.mark.parametrize(("routing", "steps"), [(CANARY, [0.2, 1.0]), (LINEAR, [0.25, 0.5, 0.75, 1.0])],
                         ids=["canary", "linear"])
def test_a_good_version_rolls_forward_through_every_step_and_no_request_fails(
        aws: dict[str, Any], tmp_path: Path, routing: dict[str, Any], steps: list[float]) -> None:
    fn, load, deployment, info = _rollout(aws, tmp_path, bad=False, routing=routing)
    assert info["status"] == "Succeeded", info
    assert [w for _, w in codedeploy.RUNS[deployment].weights] == steps
    assert load.calls and all(c.status == 200 for c in load.calls)
    assert {c.version for c in load.calls} == {fn.v1, fn.v2}
    alias = aws["lambda"].get_alias(FunctionName=fn.name, Name="live")
    assert alias["FunctionVersion"] == fn.v2 and not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    messages = " ".join(info["deploymentStatusMessages"])
    assert "time scale 0.01" in messages and f"version {fn.v2} answered the check" in messages


def test_a_bad_version_is_rolled_back_on_the_alarm_while_the_old_one_keeps_answering(
        aws: dict[str, Any], tmp_path: Path) -> None:
    routing = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 20, "canaryInterval": 5}}
    fn, load, deployment, info = _rollout(aws, tmp_path, bad=True, routing=routing)
    assert info["status"] == "Stopped", info
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert f"alarm {fn.name}-5xx is in ALARM" in info["errorInformation"]["message"]
    assert "breached the threshold (2)" in info["errorInformation"]["message"]  # the alarm's datapoints
    rollback = info["rollbackInfo"]["rollbackDeploymentId"]
    assert aws["codedeploy"].get_deployment(deploymentId=rollback)["deploymentInfo"]["creator"] == "codeDeployRollback"
    alias = aws["lambda"].get_alias(FunctionName=fn.name, Name="live")
    assert alias["FunctionVersion"] == fn.v1 and not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    rollback_at = [t for t, w in codedeploy.RUNS[deployment].weights][-1]
    result = figures(load.calls, fn, rollback_at)
    assert result["lost"] == 0  # no request of the old version failed
    assert 0 < result["to_new_version_before_rollback"] < len(load.calls) / 2
    assert result["new_version_5xx"] >= 2
    late = [c for c in load.calls if c.at > rollback_at + 0.1]  # the load reads the alias every 20 ms
    assert late and all(c.version == fn.v1 and c.status == 200 for c in late)
    print(f"\nbad canary: {result}")


def test_a_bad_version_is_rolled_back_on_the_default_5xx_rate_alarm(aws: dict[str, Any], tmp_path: Path) -> None:
    routing = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 20, "canaryInterval": 5}}
    fn, load, deployment, info = _rollout(aws, tmp_path, bad=True, routing=routing, rate_percent=2)
    assert info["status"] == "Stopped", info
    assert f"alarm {fn.name}-5xx is in ALARM" in info["errorInformation"]["message"]  # the metric-math alarm
    assert "breached the threshold (2)" in info["errorInformation"]["message"]
    alias = aws["lambda"].get_alias(FunctionName=fn.name, Name="live")
    assert alias["FunctionVersion"] == fn.v1 and not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    rollback_at = [t for t, w in codedeploy.RUNS[deployment].weights][-1]
    assert figures(load.calls, fn, rollback_at)["lost"] == 0


def test_a_slow_version_is_rolled_back_on_the_p99_alarm(aws: dict[str, Any], tmp_path: Path) -> None:
    routing = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 30, "canaryInterval": 5}}
    fn, load, _, info = _rollout(aws, tmp_path, bad=True, routing=routing, hook=SLOW_HOOK, p99_ms=25)
    assert info["status"] == "Stopped", info
    assert f"alarm {fn.name}-p99 is in ALARM" in info["errorInformation"]["message"]
    assert all(c.status == 200 for c in load.calls)  # slow, not failing: only the latency alarm could fire
    alias = aws["lambda"].get_alias(FunctionName=fn.name, Name="live")
    assert alias["FunctionVersion"] == fn.v1


def test_a_version_failing_the_pre_traffic_check_takes_no_traffic(aws: dict[str, Any], tmp_path: Path) -> None:
    fn, load, deployment, info = _rollout(aws, tmp_path, bad=True, routing=CANARY, example_fails=True)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert codedeploy.RUNS[deployment].weights == []
    assert all(c.version == fn.v1 and c.status == 200 for c in load.calls)


def test_stop_deployment_rolls_back_at_once(aws: dict[str, Any], tmp_path: Path) -> None:
    fn = create_function(aws["lambda"], aws["iam"], f"ro-{uuid.uuid4().hex[:8]}")
    routing = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 30, "canaryInterval": 30}}
    deployment = start_deployment(aws["codedeploy"], fn, routing, [])
    deadline = time.monotonic() + 5
    while not codedeploy.RUNS[deployment].weights:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    alias = aws["lambda"].get_alias(FunctionName=fn.name, Name="live")
    assert alias["RoutingConfig"]["AdditionalVersionWeights"] == {fn.v2: 0.3}
    answer = aws["codedeploy"].stop_deployment(deploymentId=deployment, autoRollbackEnabled=True)
    assert answer["status"] == "Pending"
    info = wait_done(aws["codedeploy"], deployment, 5)
    assert (info["status"], info["errorInformation"]["code"]) == ("Stopped", "MANUAL_STOP")
    alias = aws["lambda"].get_alias(FunctionName=fn.name, Name="live")
    assert alias["FunctionVersion"] == fn.v1 and not alias["RoutingConfig"]["AdditionalVersionWeights"]


def test_lambda_service_metrics_reach_cloudwatch_and_fire_an_alarm(aws: dict[str, Any]) -> None:
    name = f"m-{uuid.uuid4().hex[:8]}"
    cw = aws["cloudwatch"]
    cw.put_metric_alarm(AlarmName=name, Namespace="AWS/Lambda", MetricName="Errors",
                        Dimensions=[{"Name": "FunctionName", "Value": name},
                                    {"Name": "Resource", "Value": f"{name}:live"}],
                        Statistic="Sum", Period=60, EvaluationPeriods=3, DatapointsToAlarm=1, Threshold=3,
                        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching")
    # One timestamp (six calls split across two 0.6 s periods would never reach 3 in one), and three periods looked
    # at: on a loaded machine the batch may arrive after the evaluation just past its own period.
    now = time.time()
    for i in range(6):
        aws["sink"].record_invocation(Invocation(name, "2", 3.0, error=i % 2 == 0, qualifier="live", timestamp=now))
    aws["sink"].flush()
    deadline = time.monotonic() + 4 * MINUTE_S + 5
    while cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] != "ALARM":
        assert time.monotonic() < deadline, "3 errors in a minute did not fire the alarm"
        time.sleep(0.05)
    stats = cw.get_metric_statistics(Namespace="AWS/Lambda", MetricName="Invocations", Statistics=["Sum"],
                                     Dimensions=[{"Name": "FunctionName", "Value": name},
                                                 {"Name": "Resource", "Value": f"{name}:live"},
                                                 {"Name": "ExecutedVersion", "Value": "2"}],
                                     StartTime=time.time() - 600, EndTime=time.time() + 60, Period=60)
    assert sum(p["Sum"] for p in stats["Datapoints"]) == 6


def test_lambda_datums_follow_lambdas_dimensions_and_throttles_are_not_invocations() -> None:
    datums = lambda_datums(Invocation("f", "3", 12.5, qualifier="live"))
    sets = {tuple(sorted(d["Name"] for d in datum["Dimensions"])) for datum in datums}
    assert sets == {("FunctionName",), ("FunctionName", "Resource"), ("ExecutedVersion", "FunctionName", "Resource")}
    throttled = lambda_datums(Invocation("f", "3", throttled=True))
    assert {d["MetricName"] for d in throttled} == {"Throttles"}


def test_emf_lines_become_datums() -> None:
    line = ('{"_aws": {"Timestamp": 1764800000000, "CloudWatchMetrics": [{"Namespace": "mlfn", "Dimensions": '
            '[["Model"]], "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}, {"Name": "ServerErrors", '
            '"Unit": "Count"}]}]}, "Model": "iris", "Latency": [1.5, 2.5], "ServerErrors": 1, "Route": "x"}')
    datums = emf_datums(line)
    assert [(ns, d["MetricName"], d["Value"]) for ns, d in datums] == [
        ("mlfn", "Latency", 1.5), ("mlfn", "Latency", 2.5), ("mlfn", "ServerErrors", 1.0)]
    assert datums[0][1]["Dimensions"] == [{"Name": "Model", "Value": "iris"}]
    assert emf_datums("plain log line") == [] and emf_datums('{"_aws": 1}') == []


@pytest.mark.parametrize(("version", "weights", "error"), [
    ("1", {"2": 0.5, "3": 0.1}, "at most one additional version"),
    ("1", {"2": 1.5}, "from 0.0 to 1.0"),
    ("1", {"$LATEST": 0.5}, "published version number"),
    ("1", {"1": 0.5}, "already the alias's own version"),
])
def test_alias_routing_aws_refuses_is_refused(version: str, weights: dict[str, float], error: str) -> None:
    with pytest.raises(RoutingError, match=error):
        check_routing(version, weights)


def test_create_and_update_alias_refuse_what_lambda_refuses_with_400(rollout_aws: dict[str, Any]) -> None:
    """Through boto3: the emulator's Lambda API answers 400 InvalidParameterValueException and keeps the alias."""
    lam = rollout_aws["lambda"]
    fn = create_function(lam, rollout_aws["iam"], f"rc-{uuid.uuid4().hex[:8]}")
    bad = [{"AdditionalVersionWeights": {fn.v2: 1.5}}, {"AdditionalVersionWeights": {fn.v1: 0.5}},
           {"AdditionalVersionWeights": {fn.v2: 0.1, "99": 0.1}}]
    for routing in bad:
        with pytest.raises(lam.exceptions.InvalidParameterValueException) as caught:
            lam.update_alias(FunctionName=fn.name, Name="live", RoutingConfig=routing)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "RoutingConfig" in caught.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.create_alias(FunctionName=fn.name, Name="beta", FunctionVersion=fn.v1, RoutingConfig=bad[1])
    alias = lam.get_alias(FunctionName=fn.name, Name="live")
    assert alias["FunctionVersion"] == fn.v1 and not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    lam.update_alias(FunctionName=fn.name, Name="live", RoutingConfig={"AdditionalVersionWeights": {fn.v2: 0.25}})
    assert lam.get_alias(FunctionName=fn.name, Name="live")["RoutingConfig"]["AdditionalVersionWeights"] == {
        fn.v2: 0.25}


def test_a_published_version_keeps_its_image_when_the_function_changes(rollout_aws: dict[str, Any]) -> None:
    """A version is immutable: UpdateFunctionCode changes $LATEST only (moto's versions shared the code dict)."""
    lam, name = rollout_aws["lambda"], f"iv-{uuid.uuid4().hex[:8]}"
    role = create_function(lam, rollout_aws["iam"], f"r-{name}").role
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/immutable"
    lam.create_function(FunctionName=name, PackageType="Image", Code={"ImageUri": f"{image}:a"}, Role=role)
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.update_function_code(FunctionName=name, ImageUri=f"{image}:b")
    assert lam.get_function(FunctionName=name, Qualifier=version)["Code"]["ImageUri"] == f"{image}:a"
    assert lam.get_function(FunctionName=name)["Code"]["ImageUri"] == f"{image}:b"


def test_pick_version_follows_the_weights() -> None:
    alias = {"FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.2}}}
    picks = [pick_version(alias, i / 1000) for i in range(1000)]
    assert picks.count("2") == 200
    assert pick_version({"FunctionVersion": "4"}) == "4"
    assert [choose("1", {"2": 0.3}, d) for d in (0.0, 0.29, 0.3, 0.99)] == ["2", "2", "1", "1"]


def test_a_stacks_codedeploy_resources_make_the_group_lambda_deployments_run_in(aws: dict[str, Any]) -> None:
    """The CodeDeploy resources a Lambda model's stack with [rollout] holds (as CDK writes them) are created in the
    emulator's CodeDeploy, and a deployment in that group shifts by the stack's custom config."""
    import json

    from mlfn.cli.local import cfn_codedeploy  # noqa: F401 - registers the resource types

    fn = create_function(aws["lambda"], aws["iam"], f"ro-{uuid.uuid4().hex[:8]}")
    errors_alarm(aws["cloudwatch"], f"{fn.name}-5xx", 2)
    template = {"Resources": {
        "App": {"Type": "AWS::CodeDeploy::Application", "Properties": {"ComputePlatform": "Lambda"}},
        "Config": {"Type": "AWS::CodeDeploy::DeploymentConfig", "Properties": {
            "ComputePlatform": "Lambda", "TrafficRoutingConfig": {
                "Type": "TimeBasedLinear", "TimeBasedLinear": {"LinearPercentage": 40, "LinearInterval": 1}}}},
        "Group": {"Type": "AWS::CodeDeploy::DeploymentGroup", "Properties": {
            "ApplicationName": {"Ref": "App"}, "DeploymentConfigName": {"Ref": "Config"}, "ServiceRoleArn": fn.role,
            "AlarmConfiguration": {"Enabled": True, "Alarms": [{"Name": f"{fn.name}-5xx"}]},
            "AutoRollbackConfiguration": {"Enabled": True, "Events": ["DEPLOYMENT_STOP_ON_ALARM"]},
            "DeploymentStyle": {"DeploymentType": "BLUE_GREEN", "DeploymentOption": "WITH_TRAFFIC_CONTROL"}}}},
        "Outputs": {"App": {"Value": {"Ref": "App"}}, "Group": {"Value": {"Ref": "Group"}}}}
    cfn = aws["cloudformation"]
    cfn.create_stack(StackName=fn.name, TemplateBody=json.dumps(template))
    deadline = time.monotonic() + 10
    while (stack := cfn.describe_stacks(StackName=fn.name)["Stacks"][0])["StackStatus"] != "CREATE_COMPLETE":
        assert time.monotonic() < deadline and "FAILED" not in stack["StackStatus"], stack
        time.sleep(0.05)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    group = aws["codedeploy"].get_deployment_group(applicationName=outputs["App"],
                                                   deploymentGroupName=outputs["Group"])["deploymentGroupInfo"]
    assert group["computePlatform"] == "Lambda"
    assert group["alarmConfiguration"] == {"enabled": True, "alarms": [{"name": f"{fn.name}-5xx"}]}
    appspec = {"version": 0.0, "Resources": [{fn.name: {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": fn.name, "Alias": "live", "CurrentVersion": fn.v1, "TargetVersion": fn.v2}}}]}
    deployment = aws["codedeploy"].create_deployment(
        applicationName=outputs["App"], deploymentGroupName=outputs["Group"],
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(appspec)}})["deploymentId"]
    assert wait_done(aws["codedeploy"], deployment, 10)["status"] == "Succeeded"
    assert [w for _, w in codedeploy.RUNS[deployment].weights] == [0.4, 0.8, 1.0]
