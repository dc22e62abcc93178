"""`mlfn batch` on a deployed SageMaker-target model with a batch state machine: ONE execution of the stack's
state machine, whose `createTransformJob.sync` task runs a Batch Transform job of the model's own image in the
emulator (not mlfn's process scoring through the endpoint); `--no-wait` returns the execution's ARN at once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from .deployed import deployed_iris

pytestmark = pytest.mark.slow  # one SageMaker stack, synthesized and deployed to the emulator
BUCKET = "sm-batch-data"
RECORDS = 70


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path, Any]]:
    with deployed_iris(tmp_path_factory.mktemp("sm-batch"), "smiris",
                       f'\n[batch]\nstate_machine = true\nbucket = "{BUCKET}"\nrecords_per_call = 16\n',
                       target="sagemaker", timeout_s=400) as found:
        yield found


def put_rows(s3: Any, key: str, seed: int) -> list[list[float]]:
    rows = np.random.default_rng(seed).uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], size=(RECORDS, 4)).round(2).tolist()
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join(json.dumps(r) + "\n" for r in rows).encode())
    return rows  # type: ignore[no-any-return]


def onnx_labels(model: Path, rows: list[list[float]]) -> list[Any]:
    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["output_label"], {session.get_inputs()[0].name: np.asarray(rows, dtype=np.float32)})[0].tolist()


def test_mlfn_batch_runs_one_execution_of_the_stacks_transform_state_machine(deployed: tuple[Any, Path, Any]) -> None:
    cli, model, client = deployed
    s3, sfn, sagemaker, cfn = client("s3"), client("stepfunctions"), client("sagemaker"), client("cloudformation")
    s3.create_bucket(Bucket=BUCKET)
    rows = put_rows(s3, "rows/part-1.jsonl", 8)

    run = cli("batch", "smiris", "--input", f"s3://{BUCKET}/rows/", "--output", f"s3://{BUCKET}/scores/",
              "--local", "--json", timeout=300)
    summary = run.json()
    assert summary["status"] == "SUCCEEDED" and summary["TransformJobStatus"] == "Completed", summary
    assert "SageMaker Batch Transform" in run.stderr  # the output says which engine ran

    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="mlfn-smiris-dev")[
        "Stacks"][0]["Outputs"]}
    executions = sfn.list_executions(stateMachineArn=outputs["BatchStateMachineArn"])["executions"]
    assert [e["executionArn"] for e in executions] == [summary["executionArn"]]  # one execution, that one
    job = sagemaker.describe_transform_job(TransformJobName=summary["TransformJobName"])
    assert job["TransformJobStatus"] == "Completed" and job["BatchStrategy"] == "MultiRecord"
    lines = s3.get_object(Bucket=BUCKET, Key="scores/part-1.jsonl.out")["Body"].read().decode().splitlines()
    assert [json.loads(line)["output_label"] for line in lines] == onnx_labels(model, rows)


def test_no_wait_returns_the_execution_arn_and_the_execution_goes_on(deployed: tuple[Any, Path, Any]) -> None:
    cli, model, client = deployed
    s3, sfn = client("s3"), client("stepfunctions")
    rows = put_rows(s3, "later/part-2.jsonl", 9)
    arn = cli("batch", "smiris", "--input", f"s3://{BUCKET}/later/", "--output", f"s3://{BUCKET}/later-out/",
              "--local", "--no-wait", "--quiet", timeout=120).stdout.strip()
    assert arn.startswith("arn:aws:states:") and ":execution:" in arn
    deadline = time.monotonic() + 240
    while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(1)
    assert status == "SUCCEEDED"
    lines = s3.get_object(Bucket=BUCKET, Key="later-out/part-2.jsonl.out")["Body"].read().decode().splitlines()
    assert [json.loads(line)["output_label"] for line in lines] == onnx_labels(model, rows)


def test_an_input_outside_the_batch_bucket_is_refused_before_any_execution(deployed: tuple[Any, Path, Any]) -> None:
    cli, _model, client = deployed
    s3, sfn, cfn = client("s3"), client("stepfunctions"), client("cloudformation")
    s3.create_bucket(Bucket="elsewhere")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="mlfn-smiris-dev")[
        "Stacks"][0]["Outputs"]}
    assert outputs["BatchBucket"] == BUCKET
    before = len(sfn.list_executions(stateMachineArn=outputs["BatchStateMachineArn"])["executions"])
    run = cli("batch", "smiris", "--input", "s3://elsewhere/rows/", "--output", f"s3://{BUCKET}/x/", "--local",
              check=False, timeout=120)
    assert run.code != 0 and "Traceback" not in run.stderr
    assert "--input s3://elsewhere/rows/" in run.stderr and f"bucket '{BUCKET}'" in run.stderr, run.stderr
    assert len(sfn.list_executions(stateMachineArn=outputs["BatchStateMachineArn"])["executions"]) == before
