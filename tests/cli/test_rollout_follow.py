"""`mlfn deploy`'s rollout follower (`mlfn.cli.rollout_follow`) on ECS and SageMaker through real boto3.

ECS (ListServiceDeployments, DescribeServiceDeployments) and SageMaker (DescribeInferenceComponent) are loopback
servers speaking the botocore model's JSON 1.1 protocol (moto 5.2.5 has neither operation; each request is checked
against the operation's input shape); CloudWatch is moto's with the emulator's DescribeAlarmHistory
(`cli/local/alarm_history.py`). The rollback's alarm has cleared before the deployment ends: only its history still
holds the value that stopped it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto import mock_aws

from mlfn.cli import rollout_follow
from mlfn.cli.local import alarm_history

REGION = "us-east-1"
OUTPUTS = {"Target": "ecs", "ClusterName": "mlfn-c-dev-Cluster", "ServiceName": "mlfn-c-dev-Service"}
ARN = f"arn:aws:ecs:{REGION}:123456789012:service-deployment/mlfn-c-dev-Cluster/mlfn-c-dev-Service/abc"
ALARM = "mlfn-c-dev-RolloutErrors"
REASON = "Threshold Crossed: 1 datapoint [12.0] was greater than or equal to the threshold (3.0)."


class Scripted:
    """Answers one service's operations with a scripted sequence of states (one per describe), validating input."""

    def __init__(self, service: str, prefix: str, states: list[dict[str, Any]], on_step: Any = None) -> None:
        self.model = botocore.session.get_session().get_service_model(service)
        self.prefix, self.states, self.on_step, self.reads = prefix, states, on_step, 0

    def answer(self, target: str, body: dict[str, Any]) -> dict[str, Any]:
        operation = target.removeprefix(self.prefix)
        report = ParamValidator().validate(body, self.model.operation_model(operation).input_shape)
        assert not report.has_errors(), report.generate_report()
        state = self.states[min(self.reads, len(self.states) - 1)]
        if operation == "ListServiceDeployments":
            assert (body["cluster"], body["service"]) == (OUTPUTS["ClusterName"], OUTPUTS["ServiceName"])
            return {"serviceDeployments": [{"serviceDeploymentArn": ARN, "status": state["status"],
                                            "createdAt": state["createdAt"]}]}
        self.reads += 1
        if self.on_step:
            self.on_step(self.reads)
        if operation == "DescribeServiceDeployments":
            return {"serviceDeployments": [state], "failures": []}
        assert operation == "DescribeInferenceComponent"
        return state


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    alarm_history.install()
    with mock_aws():
        client = boto3.client("cloudwatch", region_name=REGION)
        client.put_metric_alarm(AlarmName=ALARM, Namespace="AWS/ApplicationELB",
                                MetricName="HTTPCode_Target_5XX_Count", Statistic="Sum", Period=60,
                                EvaluationPeriods=1, Threshold=3, ComparisonOperator="GreaterThanOrEqualToThreshold")
        yield client


class Session:
    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls

    def client(self, name: str) -> Any:
        return boto3.client(name, region_name=REGION, endpoint_url=self.urls.get(name))


def _ecs(status: str, stage: str, started: float) -> dict[str, Any]:
    deployment: dict[str, Any] = {
        "serviceDeploymentArn": ARN, "status": status, "lifecycleStage": stage, "createdAt": started,
        "targetServiceRevision": {"arn": "rev/2"}, "sourceServiceRevisions": [{"arn": "rev/1"}],
        "alarms": {"status": "TRIGGERED" if status.startswith("ROLLBACK") else "MONITORING", "alarmNames": [ALARM],
                   "triggeredAlarmNames": [ALARM] if status.startswith("ROLLBACK") else []}}
    if status == "ROLLBACK_SUCCESSFUL":
        deployment["rollback"] = {"reason": "Service deployment rolled back because alarm was triggered"}
    return deployment


def test_an_ecs_canary_rolled_back_names_the_alarm_and_its_value_after_it_cleared(
        cloudwatch: Any, aws_json_server: Any) -> None:
    since = time.time() - 1
    steps = [_ecs(status, stage, since + 0.5) for status, stage in (
        ("IN_PROGRESS", "PRODUCTION_TRAFFIC_SHIFT"), ("IN_PROGRESS", "BAKE_TIME"),
        ("ROLLBACK_IN_PROGRESS", "RECONCILE_SERVICE"), ("ROLLBACK_SUCCESSFUL", "CLEAN_UP"))]

    def alarm_moves(reads: int) -> None:  # the alarm fires during the bake, then clears before the rollback ends
        if reads == 2:
            cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason=REASON)
        if reads == 3:
            cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="back under the threshold")

    fake = Scripted("ecs", "AmazonEC2ContainerServiceV20141113.", steps, alarm_moves)
    session = Session({"ecs": aws_json_server(fake.answer)})
    lines: list[str] = []
    read = rollout_follow.reader_for(session, OUTPUTS)
    assert read is not None
    doc = rollout_follow.follow(session, read, lines.append, since=since, timeout_s=10, poll_s=0.01)
    assert lines[0] == f"rollout: IN_PROGRESS at PRODUCTION_TRAFFIC_SHIFT; alarms: {ALARM} OK"
    assert f"rollout: IN_PROGRESS at BAKE_TIME; alarms: {ALARM} ALARM" in lines
    assert lines[-2] == f"rollout: ROLLBACK_SUCCESSFUL at CLEAN_UP; alarms: {ALARM} OK (fired)"
    assert lines[-1].startswith(f"rollout: rolled back (ROLLBACK_SUCCESSFUL); alarm {ALARM} went to ALARM at ")
    assert lines[-1].endswith(f" UTC, value 12: {REASON}")
    assert doc["status"] == "ROLLBACK_SUCCESSFUL" and doc["fired"]["value"] == 12.0
    assert all(len(line) < 300 for line in lines)


def test_an_ecs_deployment_of_an_earlier_update_is_not_followed(cloudwatch: Any, aws_json_server: Any) -> None:
    fake = Scripted("ecs", "AmazonEC2ContainerServiceV20141113.", [_ecs("SUCCESSFUL", "CLEAN_UP", 1000.0)])
    session = Session({"ecs": aws_json_server(fake.answer)})
    lines: list[str] = []
    read = rollout_follow.reader_for(session, OUTPUTS)
    assert read is not None
    rollout_follow.follow(session, read, lines.append, since=time.time(), timeout_s=5, poll_s=0.01)
    assert lines == [f"rollout: none started by this update; SUCCESSFUL at CLEAN_UP; alarms: {ALARM} OK"]
    assert rollout_follow.reader_for(session, OUTPUTS, local=True) is None  # the emulator has no ECS deployments


def component(status: str, copies: int, modified: float) -> dict[str, Any]:
    """DescribeInferenceComponent's answer for a component updated at `modified` with the rollout alarm."""
    return {"InferenceComponentName": "mlfn-s-dev", "InferenceComponentArn": "arn:ic", "EndpointName": "e",
            "EndpointArn": "arn:e", "CreationTime": 1000.0, "LastModifiedTime": modified,
            "InferenceComponentStatus": status,
            "RuntimeConfig": {"DesiredCopyCount": 4, "CurrentCopyCount": copies},
            "LastDeploymentConfig": {
                "RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1},
                                        "WaitIntervalInSeconds": 60},
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": ALARM}]}}}


def test_a_sagemaker_rolling_update_is_followed_until_it_rolls_forward(
        cloudwatch: Any, aws_json_server: Any) -> None:
    since = time.time() - 1
    modified = since + 0.5
    fake = Scripted("sagemaker", "SageMaker.", [component("Updating", 4, modified),
                                                component("Updating", 5, modified),
                                                component("InService", 4, modified)])
    session = Session({"sagemaker": aws_json_server(fake.answer)})
    outputs = {"Target": "sagemaker", "EndpointName": "e", "InferenceComponentName": "mlfn-s-dev"}
    lines: list[str] = []
    read = rollout_follow.reader_for(session, outputs)
    assert read is not None
    doc = rollout_follow.follow(session, read, lines.append, since=since, timeout_s=10, poll_s=0.01)
    assert lines == [f"rollout: Updating; copies 4/4; alarms: {ALARM}",
                     f"rollout: Updating; copies 5/4; alarms: {ALARM}",
                     f"rollout: InService; copies 4/4; alarms: {ALARM}", "rollout: rolled forward (InService)"]
    assert doc["status"] == "InService"
    assert json.dumps(doc, default=str)


@pytest.mark.parametrize(("target", "strategy", "expected"), [
    ("lambda", "canary", True), ("ecs", "canary", True), ("ecs", "linear", True), ("ecs", "all_at_once", False),
    ("sagemaker", "canary", False)])
def test_no_wait_returns_early_where_the_stack_update_lasts_as_long_as_the_rollout(
        target: str, strategy: str, expected: bool) -> None:
    """`--no-wait` (DeployRequest.wait False) returns once the update started where CloudFormation waits for the
    shift: Lambda (CodeDeploy reports back) and ECS CANARY/LINEAR (bake times count against the stack operation);
    SageMaker's is not said on the pages read, so it is waited for."""
    from types import SimpleNamespace

    from mlfn.cli.deploy_flow import rolls_out

    spec = SimpleNamespace(settings=SimpleNamespace(rollout=SimpleNamespace(strategy=strategy)))
    assert rolls_out(spec, target) is expected  # type: ignore[arg-type]


def _ecs_stack(name: str) -> None:
    outputs = {key: {"Value": value} for key, value in OUTPUTS.items()}
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=name, TemplateBody=json.dumps({
        "Resources": {"Handle": {"Type": "AWS::SNS::Topic"}}, "Outputs": outputs}))


def test_mlfn_deploy_follows_an_ecs_rollout_or_not_with_no_wait_and_names_the_alarm_on_a_rolled_back_update(
        cloudwatch: Any, aws_json_server: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`mlfn deploy`'s own steps after the stack update (cli/commands/deploy.py), ECS through AWS_ENDPOINT_URL_ECS."""
    from argparse import Namespace
    from types import SimpleNamespace

    from mlfn.cli.aws.cloudformation import DeployError
    from mlfn.cli.commands import deploy

    started = time.time() - 1
    steps = [_ecs("IN_PROGRESS", "BAKE_TIME", started + 0.5), _ecs("ROLLBACK_SUCCESSFUL", "CLEAN_UP", started + 0.5)]
    fake = Scripted("ecs", "AmazonEC2ContainerServiceV20141113.", steps)
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECS", aws_json_server(fake.answer))
    monkeypatch.setattr(rollout_follow.time, "sleep", lambda _: None)
    _ecs_stack("mlfn-c-dev")
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason=REASON)
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="back under the threshold")
    args = Namespace(local=False, region=REGION, profile=None, no_wait=True, json=True)
    outcome = SimpleNamespace(status="STARTED", stack_name="mlfn-c-dev", name="c")

    doc = deploy._follow_rollout(outcome, args, started)  # --no-wait: one look, not followed
    assert doc is not None and doc["status"] == "IN_PROGRESS" and fake.reads == 1
    assert "rollout: not followed (--no-wait); `mlfn status c` follows it" in capsys.readouterr().err

    args.no_wait = False
    outcome.status = "UPDATED"
    doc = deploy._follow_rollout(outcome, args, started)
    err = capsys.readouterr().err.splitlines()
    assert doc is not None and doc["status"] == "ROLLBACK_SUCCESSFUL"
    assert err[-1].startswith(f"rollout: rolled back (ROLLBACK_SUCCESSFUL); alarm {ALARM} went to ALARM at ")
    assert err[-1].endswith(f" UTC, value 12: {REASON}")

    failed = DeployError("rolled back", stack_name="mlfn-c-dev", status="UPDATE_ROLLBACK_COMPLETE")
    deploy._report_rolled_back(failed, args, started)
    captured = capsys.readouterr()
    assert f"alarm {ALARM} went to ALARM at " in captured.err and "value 12" in captured.err
    reported = json.loads(captured.out)
    assert reported["status"] == "ROLLED_BACK" and reported["rollout"]["fired"]["value"] == 12.0


def test_mlfn_status_and_rollback_on_a_sagemaker_component_name_its_update_and_the_alarm(
        cloudwatch: Any, aws_json_server: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """SageMaker rolls an inference component back by itself: `mlfn status` shows the update, `mlfn rollback` says
    which rollback alarm went to ALARM during it and its value (then that it cannot roll back itself)."""
    from mlfn.cli.main import main

    modified = time.time() - 5
    fake = Scripted("sagemaker", "SageMaker.", [component("InService", 4, modified)])
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", aws_json_server(fake.answer))
    outputs = {"Target": "sagemaker", "EndpointName": "e", "InferenceComponentName": "mlfn-s-dev"}
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName="mlfn-s-dev", TemplateBody=json.dumps({
        "Resources": {"Handle": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()}}))
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason=REASON)
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="back under the threshold")

    assert main(["status", "s", "--region", REGION, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["sagemaker_rollout"]["status"] == "InService" and status["sagemaker_rollout"]["alarms"] == [ALARM]
    assert main(["status", "s", "--region", REGION]) == 0
    assert f"rollout: InService; copies 4/4; alarms: {ALARM}" in capsys.readouterr().out

    assert main(["rollback", "s", "--region", REGION]) == 2
    err = capsys.readouterr().err
    assert f"inference component mlfn-s-dev: InService; alarm {ALARM} went to ALARM at " in err
    assert f"value 12: {REASON}" in err and "SageMaker rolls back by itself" in err
