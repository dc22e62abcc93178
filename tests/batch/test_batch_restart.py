"""The emulator's batch records survive `mlfn local stop`/`start` as the rest of its state does (moto's backends,
saved by the control plane): Step Functions executions with their Map Runs, and Batch Transform jobs. What was still
running when the emulator stopped has no runner after the restart and is reported so: the execution ABORTED (error
`mlfn.EmulatorRestarted`) with its Map Run ABORTED, the transform job Failed with a reason naming the restart."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlfn.cli.batch.job import JobSettings
from mlfn.cli.batch.transform_record import TransformRecord
from mlfn.cli.local import distributed_map as dm
from mlfn.cli.local.control_plane import ControlPlane

from .test_distributed_map import DEFINITION

ROLE = "arn:aws:iam::123456789012:role/batch"


def clients(url: str) -> tuple[Any, Any]:
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    return session.client("stepfunctions", endpoint_url=url), session.client("sagemaker", endpoint_url=url)


def wait_for(check: Any, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("not within the time allowed")


def held_map(gate: threading.Event, items: int, hold_all: bool = False) -> Any:
    """A stand-in for the executor's `_map`: `items` items scored at once, or (input `hold`, or every execution
    with `hold_all`) held until the test sets `gate` (at most 30 s)."""

    def fake_map(execution: Any, state: dict[str, Any], run: Any, region: str) -> dict[str, Any]:
        run.count("running", items)
        if hold_all or json.loads(execution.execution_input).get("hold"):
            gate.wait(30)
        run.count("succeeded", items)
        return {"MapRunArn": run.arn}

    return fake_map


@contextmanager
def emulator(state_dir: Path, definition: dict[str, Any]) -> Iterator[tuple[Any, Any, str]]:
    """A control plane in this process over `state_dir` with one state machine of `definition`:
    (Step Functions client, SageMaker client, state machine ARN); stopped (its state saved) at the end. moto's
    backends belong to the process, so each state machine gets a name of its own."""
    plane = ControlPlane(state_dir=state_dir)
    try:
        sfn, sagemaker = clients(plane.start())
        machine = sfn.create_state_machine(name=f"batch-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition),
                                           roleArn=ROLE)["stateMachineArn"]
        yield sfn, sagemaker, machine
    finally:
        plane.stop()


def test_executions_map_runs_and_transform_jobs_survive_a_restart(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    monkeypatch.setattr(dm, "_map", held_map(gate, 3))  # the `hold` execution is RUNNING at the stop
    with emulator(tmp_path, DEFINITION) as (sfn, sagemaker, machine):
        done = sfn.start_execution(stateMachineArn=machine, input='{"key": "a.jsonl", "out": "o"}')["executionArn"]
        wait_for(lambda: sfn.describe_execution(executionArn=done)["status"] == "SUCCEEDED")
        held = sfn.start_execution(stateMachineArn=machine, input='{"key": "b.jsonl", "hold": true}')["executionArn"]
        wait_for(lambda: sfn.list_map_runs(executionArn=held)["mapRuns"])
        assert sfn.describe_execution(executionArn=held)["status"] == "RUNNING"
        records = {name: TransformRecord(sagemaker, name, "iris", "s3://b/in/", "s3://b/out/", JobSettings())
                   for name in ("tj-ended", "tj-running")}
        for record in records.values():
            record.start()
        records["tj-ended"].end("Completed")
    gate.set()

    again = ControlPlane(state_dir=tmp_path)
    try:
        sfn, sagemaker = clients(again.start())
        assert sfn.describe_execution(executionArn=done)["status"] == "SUCCEEDED"
        (run,) = sfn.list_map_runs(executionArn=done)["mapRuns"]
        described = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
        assert described["status"] == "SUCCEEDED" and described["itemCounts"]["succeeded"] == 3

        cut = sfn.describe_execution(executionArn=held)
        assert cut["status"] == "ABORTED" and "stopDate" in cut
        assert cut["error"] == "mlfn.EmulatorRestarted" and "emulator stopped while this execution ran" in cut["cause"]
        (run,) = sfn.list_map_runs(executionArn=held)["mapRuns"]
        described = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
        assert described["status"] == "ABORTED" and "stopDate" in described
        assert (described["itemCounts"]["aborted"], described["itemCounts"]["running"]) == (3, 0)

        assert sagemaker.describe_transform_job(TransformJobName="tj-ended")["TransformJobStatus"] == "Completed"
        running = sagemaker.describe_transform_job(TransformJobName="tj-running")
        assert running["TransformJobStatus"] == "Failed"
        assert "emulator stopped while this job ran" in running["FailureReason"]
    finally:
        again.stop()
