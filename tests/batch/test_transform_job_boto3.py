"""A Batch Transform job made with boto3 alone runs in the emulator on the model's own image (pushed to its ECR),
through the data plane: InProgress, then Completed with `<output path>/<object>.out` holding one answer line per
input line (as onnxruntime answers), or Failed with its reason and no `.out` for the object that failed."""

from __future__ import annotations

import contextlib
import json
import runpy
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError, WaiterError

from mlfn.cli.local.control_plane import client_environment

pytestmark = pytest.mark.slow  # an emulator of its own and a pushed image
ROOT = Path(__file__).resolve().parents[2]
BUCKET = "transform-data"
ROLE = "arn:aws:iam::123456789012:role/transform"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    h = SimpleNamespace(**runpy.run_path(str(ROOT / "tests" / "deploy" / "harness.py")))  # not a package
    root = tmp_path_factory.mktemp("transform")
    cli = h.Cli(root / "home", root)
    try:
        info = cli("local", "start", "--json").json()
        env = client_environment(info["control_plane"])
        model = h.copy_model(h.FUNCTIONS / "iris", root / "tiris", name="tiris")
        image = cli("push", str(model), "--base", "none", "--json", env=env).json()["reference"]
        kwargs = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        clients = {name: boto3.client(name, **kwargs) for name in ("s3", "sagemaker", "stepfunctions")}  # type: ignore[call-overload]
        clients["sagemaker"].create_model(ModelName="tiris", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": image})
        clients["s3"].create_bucket(Bucket=BUCKET)
        yield {**clients, "h": h, "model": model}
    finally:
        cli.stop_emulator()


def rows(seed: int, count: int) -> list[list[float]]:
    generator = np.random.default_rng(seed)
    return generator.uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], size=(count, 4)).round(2).tolist()  # type: ignore


def wait(sagemaker: Any, name: str) -> dict[str, Any]:
    with contextlib.suppress(WaiterError):  # the waiter raises on Failed; DescribeTransformJob says why
        sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    return dict(sagemaker.describe_transform_job(TransformJobName=name))


def create(sagemaker: Any, name: str, prefix: str, out: str, **overrides: Any) -> None:
    request: dict[str, Any] = dict(
        TransformJobName=name, ModelName="tiris", BatchStrategy="MultiRecord", MaxPayloadInMB=1,
        MaxConcurrentTransforms=2,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}"}},
                        "ContentType": "application/jsonlines", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{BUCKET}/{out}", "Accept": "application/jsonlines",
                         "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    request.update(overrides)
    sagemaker.create_transform_job(**request)


def test_a_boto3_transform_job_runs_on_the_models_image(emulator: dict[str, Any]) -> None:
    s3, sagemaker, h = emulator["s3"], emulator["sagemaker"], emulator["h"]
    parts = {"rows/a.jsonl": rows(1, 150), "rows/deeper/b.jsonl": rows(2, 7)}
    for key, records in parts.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body="".join(json.dumps(r) + "\n" for r in records).encode())

    create(sagemaker, "boto-transform", "rows/", "scores")
    assert sagemaker.describe_transform_job(TransformJobName="boto-transform")["TransformJobStatus"] == "InProgress"
    job = wait(sagemaker, "boto-transform")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TransformEndTime"] >= job["TransformStartTime"]
    for key, records in parts.items():
        out = f"scores/{key.removeprefix('rows/')}.out"
        lines = s3.get_object(Bucket=BUCKET, Key=out)["Body"].read().decode().splitlines()
        assert h.same_predictions([json.loads(line) for line in lines], h.onnxruntime_answer(emulator["model"],
                                                                                            records))


def test_single_record_strategy_answers_the_same(emulator: dict[str, Any]) -> None:
    s3, sagemaker, h = emulator["s3"], emulator["sagemaker"], emulator["h"]
    records = rows(3, 12)
    s3.put_object(Bucket=BUCKET, Key="single/c.jsonl", Body="".join(json.dumps(r) + "\n" for r in records).encode())
    create(sagemaker, "boto-single", "single/", "single-out/", BatchStrategy="SingleRecord",
           MaxConcurrentTransforms=1)
    assert wait(sagemaker, "boto-single")["TransformJobStatus"] == "Completed"
    lines = s3.get_object(Bucket=BUCKET, Key="single-out/c.jsonl.out")["Body"].read().decode().splitlines()
    assert h.same_predictions([json.loads(line) for line in lines], h.onnxruntime_answer(emulator["model"], records))


def test_an_object_the_container_refuses_fails_the_job_and_gets_no_out(emulator: dict[str, Any]) -> None:
    s3, sagemaker = emulator["s3"], emulator["sagemaker"]
    s3.put_object(Bucket=BUCKET, Key="docs/good.json", Body=json.dumps({"instances": rows(4, 3)}).encode())
    s3.put_object(Bucket=BUCKET, Key="docs/bad.json", Body=b"this is not JSON")
    create(sagemaker, "boto-failing", "docs/", "docs-out/", BatchStrategy="SingleRecord",
           TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/docs/"}},
                           "ContentType": "application/json", "SplitType": "None"},
           TransformOutput={"S3OutputPath": f"s3://{BUCKET}/docs-out/", "Accept": "application/json"})
    job = wait(sagemaker, "boto-failing")
    assert job["TransformJobStatus"] == "Failed"
    assert "docs/bad.json" in job["FailureReason"] and "400" in job["FailureReason"], job["FailureReason"]
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="docs-out/").get("Contents", [])]
    assert listed == ["docs-out/good.json.out"]  # the object that succeeded, and nothing of the one that failed
    assert len(json.loads(s3.get_object(Bucket=BUCKET, Key=listed[0])["Body"].read())["predictions"]) == 3


def test_a_missing_model_is_refused_and_an_empty_prefix_fails_the_job(emulator: dict[str, Any]) -> None:
    sagemaker = emulator["sagemaker"]
    with pytest.raises(ClientError) as refused:
        create(sagemaker, "boto-nomodel", "rows/", "nomodel/", ModelName="no-such-model")
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "no-such-model" in refused.value.response["Error"]["Message"]
    create(sagemaker, "boto-empty", "nothing-here/", "empty/")
    job = wait(sagemaker, "boto-empty")
    assert job["TransformJobStatus"] == "Failed" and "No S3 objects found" in job["FailureReason"]


def transform_machine(sfn: Any, name: str, strategy: str = "MultiRecord") -> str:
    """A state machine of one `sagemaker:createTransformJob.sync` task, as the stack of a container model has."""
    definition = {"StartAt": "Transform", "States": {"Transform": {
        "Type": "Task", "Resource": "arn:aws:states:::sagemaker:createTransformJob.sync", "End": True,
        "Parameters": {
            "TransformJobName.$": "$$.Execution.Name", "ModelName": "tiris", "BatchStrategy": strategy,
            "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri.$": "$.input"}},
                               "ContentType.$": "$.contentType", "SplitType.$": "$.split"},
            "TransformOutput": {"S3OutputPath.$": "$.output", "AssembleWith": "Line"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1}}}}}
    return str(sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"])


def run_execution(sfn: Any, machine: str, name: str, document: dict[str, str], running: bool = True) -> dict[str, Any]:
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(document))["executionArn"]
    assert not running or sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"  # moto's would stay so
    deadline = time.monotonic() + 300
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not end"
        time.sleep(0.5)
    return dict(execution)


def test_a_create_transform_job_sync_task_runs_the_job_and_ends_with_it(emulator: dict[str, Any]) -> None:
    s3, sagemaker, sfn, h = emulator["s3"], emulator["sagemaker"], emulator["stepfunctions"], emulator["h"]
    records = rows(6, 40)
    s3.put_object(Bucket=BUCKET, Key="sfn/in.jsonl", Body="".join(json.dumps(r) + "\n" for r in records).encode())
    machine = transform_machine(sfn, "transform-sync")
    execution = run_execution(sfn, machine, "sfn-good", {
        "input": f"s3://{BUCKET}/sfn/", "output": f"s3://{BUCKET}/sfn-out/", "contentType": "application/jsonlines",
        "split": "Line"})
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["TransformJobName"] == "sfn-good" and output["TransformJobStatus"] == "Completed"
    assert sagemaker.describe_transform_job(TransformJobName="sfn-good")["ModelName"] == "tiris"
    lines = s3.get_object(Bucket=BUCKET, Key="sfn-out/in.jsonl.out")["Body"].read().decode().splitlines()
    assert h.same_predictions([json.loads(line) for line in lines], h.onnxruntime_answer(emulator["model"], records))


def test_a_failed_job_fails_its_execution_with_states_task_failed(emulator: dict[str, Any]) -> None:
    s3, sfn = emulator["s3"], emulator["stepfunctions"]
    s3.put_object(Bucket=BUCKET, Key="sfn-bad/bad.json", Body=b"this is not JSON")
    machine = transform_machine(sfn, "transform-sync-failing")
    execution = run_execution(sfn, machine, "sfn-bad", {
        "input": f"s3://{BUCKET}/sfn-bad/", "output": f"s3://{BUCKET}/sfn-bad-out/", "contentType": "application/json",
        "split": "None"})
    assert execution["status"] == "FAILED" and execution["error"] == "States.TaskFailed", execution
    cause = json.loads(execution["cause"])
    assert cause["TransformJobStatus"] == "Failed" and "sfn-bad/bad.json" in cause["FailureReason"]
    # no $.input in the state input
    missing = run_execution(sfn, machine, "sfn-missing", {"output": "s3://x/y/"}, running=False)
    assert missing["status"] == "FAILED" and missing["error"] == "States.ParameterPathFailure", missing


def test_stop_transform_job_stops_a_running_job_without_its_output(emulator: dict[str, Any]) -> None:
    s3, sagemaker = emulator["s3"], emulator["sagemaker"]
    s3.put_object(Bucket=BUCKET, Key="long/big.jsonl",
                  Body="".join(json.dumps(r) + "\n" for r in rows(7, 3000)).encode())
    create(sagemaker, "boto-stopped", "long/", "long-out/", BatchStrategy="SingleRecord", MaxConcurrentTransforms=1)
    sagemaker.stop_transform_job(TransformJobName="boto-stopped")
    job = wait(sagemaker, "boto-stopped")
    assert job["TransformJobStatus"] == "Stopped" and "TransformEndTime" in job
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="long-out/")  # no partial object


def test_stop_execution_aborts_it_and_stops_its_transform_job(emulator: dict[str, Any]) -> None:
    sfn, sagemaker = emulator["stepfunctions"], emulator["sagemaker"]
    machine = transform_machine(sfn, "transform-sync-stopped", "SingleRecord")  # 3,000 requests: a while
    arn = sfn.start_execution(stateMachineArn=machine, name="sfn-stopped", input=json.dumps({
        "input": f"s3://{BUCKET}/long/", "output": f"s3://{BUCKET}/sfn-long-out/",
        "contentType": "application/jsonlines", "split": "Line"}))["executionArn"]
    deadline = time.monotonic() + 60
    while True:  # the task has created its job
        with contextlib.suppress(ClientError):
            if sagemaker.describe_transform_job(TransformJobName="sfn-stopped")["TransformJobStatus"] == "InProgress":
                break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sfn.stop_execution(executionArn=arn)
    assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
    assert wait(sagemaker, "sfn-stopped")["TransformJobStatus"] == "Stopped"
