"""A local batch is a transform job in the emulator's SageMaker, seen through boto3 as AWS shows one:
InProgress while it runs, then Completed / Failed (FailureReason) / Stopped; StopTransformJob stops it (Stopping,
then Stopped) and refuses a job that has ended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from mlfn.cli.batch.invokers import in_process
from mlfn.cli.batch.job import Job, JobSettings, JobStopped
from mlfn.cli.batch.locations import parse_s3
from mlfn.cli.batch.transform_record import TransformRecord
from mlfn.cli.main import main

from .conftest import BUCKET, put_lines

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]] * 20


def job_for(s3: Any, prefix: str, name: str, send: Any, home: Path, **settings: Any) -> tuple[Job, Any]:
    sagemaker = boto3.client("sagemaker")
    put_lines(s3, f"{prefix}/rows.jsonl", ROWS)
    job_settings = JobSettings(records_per_call=10, **settings)
    source, target = parse_s3(f"s3://{BUCKET}/{prefix}/", "-"), parse_s3(f"s3://{BUCKET}/{prefix}-out/", "-")
    record = TransformRecord(sagemaker, name, "iris", source.uri, target.uri, job_settings, poll_s=0)
    return Job(s3, source, target, send, job_settings, model="iris", work_dir=home / "batch", record=record), sagemaker


def test_a_job_is_in_progress_while_it_runs_then_completed(s3, mlfn_home) -> None:
    model = in_process(FUNCTIONS / "iris")
    seen: list[str] = []

    def send(body: bytes, headers: dict[str, str]) -> Any:
        seen.append(sagemaker.describe_transform_job(TransformJobName="tj-done")["TransformJobStatus"])
        return model(body, headers)

    job, sagemaker = job_for(s3, "tj-done", "tj-done", send, mlfn_home)
    assert job.run()["TransformJobStatus"] == "Completed"
    assert set(seen) == {"InProgress"} and len(seen) == 6
    described = sagemaker.describe_transform_job(TransformJobName="tj-done")
    assert described["TransformJobStatus"] == "Completed" and "TransformEndTime" in described
    assert described["TransformInput"]["SplitType"] == "Line" and described["BatchStrategy"] == "MultiRecord"
    assert described["TransformOutput"]["AssembleWith"] == "Line"
    with pytest.raises(ClientError, match="rejected because the transform job is in status Completed"):
        sagemaker.stop_transform_job(TransformJobName="tj-done")


def test_stop_transform_job_stops_the_running_job(s3, mlfn_home) -> None:
    model = in_process(FUNCTIONS / "iris")
    calls: list[int] = []

    def send(body: bytes, headers: dict[str, str]) -> Any:
        calls.append(1)
        if len(calls) == 2:
            sagemaker.stop_transform_job(TransformJobName="tj-stop")
            assert sagemaker.describe_transform_job(TransformJobName="tj-stop")["TransformJobStatus"] == "Stopping"
        return model(body, headers)

    job, sagemaker = job_for(s3, "tj-stop", "tj-stop", send, mlfn_home)
    with pytest.raises(JobStopped):
        job.run()
    assert len(calls) == 2
    assert sagemaker.describe_transform_job(TransformJobName="tj-stop")["TransformJobStatus"] == "Stopped"


def test_a_job_with_too_many_failed_records_is_failed_with_its_reason(s3, mlfn_home) -> None:
    model = in_process(FUNCTIONS / "iris")

    def send(body: bytes, headers: dict[str, str]) -> Any:
        return model(body.replace(b"[5.9,3.0,4.2,1.5]", b"[1]"), headers)  # every third record is refused

    job, sagemaker = job_for(s3, "tj-fail", "tj-fail", send, mlfn_home, max_failed_percent=10)
    assert job.run()["TransformJobStatus"] == "Failed"
    described = sagemaker.describe_transform_job(TransformJobName="tj-fail")
    assert described["TransformJobStatus"] == "Failed"
    assert "20 of 60 records failed" in described["FailureReason"]


def test_mlfn_batch_local_is_listed_as_a_transform_job(s3, capsys) -> None:
    put_lines(s3, "tj-cli/rows.jsonl", ROWS)
    assert main(["batch", str(FUNCTIONS / "iris"), "--input", f"s3://{BUCKET}/tj-cli/", "--output",
                 f"s3://{BUCKET}/tj-cli-out/", "--local", "--json", "--quiet"]) == 0
    name = json.loads(capsys.readouterr().out)["TransformJobName"]
    described = boto3.client("sagemaker").describe_transform_job(TransformJobName=name)
    assert described["TransformJobStatus"] == "Completed" and described["ModelName"] == "iris"
