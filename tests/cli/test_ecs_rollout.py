"""`mlfn status` / `mlfn rollback` for an ECS CANARY/LINEAR deployment (`mlfn.cli.ecs_rollout`) through real boto3.

moto 5.2.5 implements none of ListServiceDeployments, DescribeServiceDeployments, StopServiceDeployment, so ECS is a
loopback server speaking those three operations in the botocore model's own protocol (awsJson1_1, the
`X-Amz-Target` header; each request is checked against the operation's input shape); CloudWatch's alarms are
moto's. The server moves a stopped deployment through ROLLBACK_REQUESTED and ROLLBACK_IN_PROGRESS to
ROLLBACK_SUCCESSFUL, as "Stopping Amazon ECS service deployments" describes for one IN_PROGRESS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto import mock_aws

from mlfn.cli import ecs_rollout
from mlfn.cli.console import CliError
from mlfn.cli.local import alarm_history

REGION = "us-east-1"
CLUSTER, SERVICE = "mlfn-ecs-canary-dev-Cluster", "mlfn-ecs-canary-dev-Service"
ARN = f"arn:aws:ecs:{REGION}:123456789012:service-deployment/{CLUSTER}/{SERVICE}/NCWGC2ZR-taawPAYrIaU5"
OUTPUTS = {"Target": "ecs", "ClusterName": CLUSTER, "ServiceName": SERVICE}
ALARM = "mlfn-ecs-canary-RolloutErrors"
PREFIX = "AmazonEC2ContainerServiceV20141113."


class FakeEcs:
    """One service with one deployment; records every request it answered."""

    def __init__(self, status: str) -> None:
        self.status, self.requests, self.describes_after_stop = status, [], 0
        self.model = botocore.session.get_session().get_service_model("ecs")

    def answer(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        shape = self.model.operation_model(operation).input_shape
        report = ParamValidator().validate(body, shape)
        assert not report.has_errors(), report.generate_report()  # the client sent what the model allows
        self.requests.append((operation, body))
        if operation == "ListServiceDeployments":
            wanted = body.get("status")
            match = (body["cluster"], body["service"]) == (CLUSTER, SERVICE) and (not wanted or self.status in wanted)
            return {"serviceDeployments": [{"serviceDeploymentArn": ARN, "status": self.status,
                                            "createdAt": 1764800000.0}] if match else []}
        if operation == "StopServiceDeployment":
            assert self.status in ("PENDING", "IN_PROGRESS")
            self.status = "ROLLBACK_REQUESTED"
            return {"serviceDeploymentArn": body["serviceDeploymentArn"]}
        assert operation == "DescribeServiceDeployments" and body["serviceDeploymentArns"] == [ARN]
        if self.status.startswith("ROLLBACK_") and self.status != "ROLLBACK_SUCCESSFUL":
            self.describes_after_stop += 1
            self.status = "ROLLBACK_IN_PROGRESS" if self.describes_after_stop < 3 else "ROLLBACK_SUCCESSFUL"
        deployment: dict[str, Any] = {
            "serviceDeploymentArn": ARN, "status": self.status, "lifecycleStage": "BAKE_TIME",
            "targetServiceRevision": {"arn": "rev/2"}, "sourceServiceRevisions": [{"arn": "rev/1"}],
            "alarms": {"status": "TRIGGERED", "alarmNames": [ALARM], "triggeredAlarmNames": [ALARM]}}
        if self.status == "ROLLBACK_SUCCESSFUL":
            deployment["rollback"] = {"reason": "Service deployment rolled back because of stop request"}
        return {"serviceDeployments": [deployment], "failures": []}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    alarm_history.install()  # the emulator's DescribeAlarmHistory: moto 5.2.5 serves none
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        cloudwatch.put_metric_alarm(AlarmName=ALARM, Namespace="AWS/ApplicationELB",
                                    MetricName="HTTPCode_Target_5XX_Count", Statistic="Sum", Period=60,
                                    EvaluationPeriods=1, Threshold=5,
                                    ComparisonOperator="GreaterThanOrEqualToThreshold")
        cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM",
                                   StateReason="Threshold Crossed: 1 datapoint [9.0] was >= the threshold (5.0).")
        yield cloudwatch


class Session:
    """What `ecs_rollout` asks of a boto3 session: its ECS client on the loopback server, CloudWatch moto's."""

    def __init__(self, ecs_url: str) -> None:
        self.ecs_url = ecs_url

    def client(self, name: str) -> Any:
        return boto3.client(name, region_name=REGION, endpoint_url=self.ecs_url if name == "ecs" else None)


def _serve(fake: FakeEcs, aws_json_server: Any) -> Session:
    def answer(target: str, body: dict[str, Any]) -> dict[str, Any]:
        assert target.startswith(PREFIX)
        return fake.answer(target[len(PREFIX):], body)

    return Session(aws_json_server(answer))


def test_rollback_stops_the_deployment_in_progress_with_rollback_and_names_the_alarm(
        aws: Any, aws_json_server: Any) -> None:
    fake = FakeEcs("IN_PROGRESS")
    session = _serve(fake, aws_json_server)
    said: list[str] = []
    doc = ecs_rollout.rollback(session, OUTPUTS, said.append, poll_s=0.01, timeout_s=10)
    stops = [body for op, body in fake.requests if op == "StopServiceDeployment"]
    assert stops == [{"serviceDeploymentArn": ARN, "stopType": "ROLLBACK"}]
    listed = next(body for op, body in fake.requests if op == "ListServiceDeployments")
    assert listed["cluster"] == CLUSTER and listed["service"] == SERVICE and "IN_PROGRESS" in listed["status"]
    assert said[0].startswith(f"alarm {ALARM} went to ALARM at ")  # its history: the transition and its value
    assert said[0].endswith(" UTC, value 9: Threshold Crossed: 1 datapoint [9.0] was >= the threshold (5.0).")
    assert said[-1].startswith("rolled back: ROLLBACK_SUCCESSFUL")
    assert doc["status"] == "ROLLBACK_SUCCESSFUL" and doc["rolled_back"].startswith("Service deployment rolled back")
    assert doc["alarms"] == [{"name": ALARM, "state": "ALARM", "triggered": True,
                              "reason": "Threshold Crossed: 1 datapoint [9.0] was >= the threshold (5.0)."}]


def test_status_shows_the_newest_deployment_and_rollback_without_one_in_progress_says_why(
        aws: Any, aws_json_server: Any) -> None:
    fake = FakeEcs("SUCCESSFUL")
    session = _serve(fake, aws_json_server)
    doc = ecs_rollout.state(session, OUTPUTS)
    with pytest.raises(CliError) as caught:
        ecs_rollout.rollback(session, OUTPUTS, lambda _: None, poll_s=0.01)
    assert (doc["status"], doc["stage"], doc["to_revision"], doc["from_revisions"]) == (
        "SUCCESSFUL", "BAKE_TIME", "rev/2", ["rev/1"])
    assert ecs_rollout.describe(doc) == f"SUCCESSFUL at BAKE_TIME; alarms: {ALARM} ALARM (fired)"
    message = str(caught.value)
    assert "no ECS service deployment in progress" in message and "deploy its model folder again" in message
    assert not [op for op, _ in fake.requests if op == "StopServiceDeployment"]


def test_mlfn_rollback_and_status_on_an_ecs_stack(aws: Any, aws_json_server: Any, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The commands themselves: the stack's outputs (moto's CloudFormation) say target ecs, ECS answers through
    AWS_ENDPOINT_URL_ECS (botocore's per-service endpoint variable) from the loopback server."""
    from mlfn.cli.main import main

    fake = FakeEcs("IN_PROGRESS")
    url = aws_json_server(lambda target, body: fake.answer(target[len(PREFIX):], body))
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECS", url)
    monkeypatch.setattr(ecs_rollout.time, "sleep", lambda _: None)
    outputs = {key: {"Value": value} for key, value in OUTPUTS.items()}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="mlfn-ecs-canary-dev", TemplateBody=json.dumps({
            "Resources": {"Handle": {"Type": "AWS::SNS::Topic"}}, "Outputs": outputs}))
    assert main(["status", "ecs-canary", "--region", REGION, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["ecs_rollout"]["status"] == "IN_PROGRESS"
    assert main(["rollback", "ecs-canary", "--region", REGION, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "ROLLBACK_SUCCESSFUL"
    assert f"alarm {ALARM} went to ALARM at " in captured.err
    assert [op for op, _ in fake.requests].count("StopServiceDeployment") == 1
