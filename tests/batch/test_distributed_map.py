"""The emulator's Distributed Map executor (cli/local/distributed_map.py) over stand-in S3 and Lambda clients:
MaxConcurrency bounds the children in flight, ItemBatcher sizes the batches, and more failed items than
ToleratedFailurePercentage fails the Map Run and the execution with States.ExceedToleratedFailureThreshold."""

from __future__ import annotations

import io
import json
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from mlfn.cli.local import distributed_map as dm

DEFINITION = {"StartAt": "Records", "States": {"Records": {
    "Type": "Map", "End": True, "MaxConcurrency": 2, "ToleratedFailurePercentage": 10,
    "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSONL"},
                   "Parameters": {"Bucket": "b", "Key.$": "$.key"}},
    "ItemBatcher": {"MaxItemsPerBatch": 5},
    "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b", "Prefix.$": "$.out"},
                     "WriterConfig": {"OutputType": "JSONL", "Transformation": "FLATTEN"}},
    "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Score",
                      "States": {"Score": {"Type": "Task", "End": True,
                                           "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f:live"}}}}}}


class FakeS3:
    def __init__(self, body: bytes) -> None:
        self.body, self.put = body, {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.body)}

    def put_object(self, Bucket: str, Key: str, Body: Any) -> None:
        self.put[Key] = Body if isinstance(Body, bytes) else Body.read()


class FakeLambda:
    """Answers one result per item; a batch holding item 13 fails. Records the most children in flight."""

    def __init__(self) -> None:
        self.lock, self.now, self.most = threading.Lock(), 0, 0
        self.stop: Any = None  # an execution to stop (StopExecution: moto sets ABORTED) at the first call
        self.delay = 0.02  # seconds each call takes

    def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        if self.stop is not None:
            self.stop.status = "ABORTED"
        time.sleep(self.delay)
        with self.lock:
            self.now -= 1
        items = json.loads(Payload)["Items"]
        if 13 in items:
            return {"FunctionError": "Unhandled", "Payload": io.BytesIO(b'{"errorMessage": "boom"}')}
        return {"Payload": io.BytesIO(json.dumps([{"double": 2 * i} for i in items]).encode())}


def run(records: int, monkeypatch: pytest.MonkeyPatch, *, stop: bool = False, delay: float = 0.02,
        timeout_s: float | None = None) -> tuple[Any, Any, FakeS3, FakeLambda]:
    s3, lam = FakeS3(b"".join(b"%d\n" % i for i in range(records))), FakeLambda()
    lam.delay = delay
    monkeypatch.setattr(dm, "_client", lambda service, region: s3 if service == "s3" else lam)
    execution = SimpleNamespace(state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:m",
                                execution_arn="arn:aws:states:us-east-1:123456789012:execution:m:e",
                                account_id="123456789012",
                                execution_input=json.dumps({"key": "in.jsonl", "out": "res"}), status="RUNNING",
                                output=None, error=None, cause=None, stop_date=None)
    lam.stop = execution if stop else None
    name, state = dm.distributed_map(json.dumps(DEFINITION)) or ("", {})
    dm._execute(execution, name, state, "us-east-1", timeout_s)
    return execution, execution.mlfn_map_run, s3, lam


def test_children_stay_within_max_concurrency_and_results_are_flattened(monkeypatch: pytest.MonkeyPatch) -> None:
    execution, mrun, s3, lam = run(12, monkeypatch)
    assert execution.status == "SUCCEEDED" and lam.most <= 2
    described = mrun.describe()
    assert described["itemCounts"]["succeeded"] == 12 and described["executionCounts"]["total"] == 3  # 5 + 5 + 2
    manifest = json.loads(s3.put[json.loads(execution.output)["ResultWriterDetails"]["Key"]])
    (result,) = manifest["ResultFiles"]["SUCCEEDED"]
    assert [json.loads(line)["double"] for line in s3.put[result["Key"]].decode().splitlines()] == [
        2 * i for i in range(12)]


def test_more_failed_items_than_tolerated_fails_the_execution(monkeypatch: pytest.MonkeyPatch) -> None:
    execution, mrun, _, _ = run(20, monkeypatch)  # items 10..14 fail: 25% > 10%
    assert execution.status == "FAILED" and execution.error == "States.ExceedToleratedFailureThreshold"
    assert execution.cause == "The specified tolerated failure threshold was exceeded"
    counts = mrun.describe()["itemCounts"]
    assert (counts["total"], counts["succeeded"], counts["failed"], counts["running"]) == (20, 15, 5, 0)
    assert mrun.status == "FAILED" and execution.stop_date is not None


def test_a_stopped_execution_ends_aborted_without_running_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    execution, mrun, _, _ = run(200, monkeypatch, stop=True)
    described = mrun.describe()
    assert execution.status == "ABORTED" and described["status"] == "ABORTED" and "stopDate" in described
    assert described["itemCounts"]["total"] < 200 and described["itemCounts"]["running"] == 0


def test_an_execution_past_its_timeout_seconds_is_timed_out_and_its_map_run_aborted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    execution, mrun, _, _ = run(200, monkeypatch, delay=0.2, timeout_s=0.5)  # 40 calls of 0.2 s, 2 at once: 4 s
    assert time.monotonic() - started < 2.5  # no child started after the deadline
    assert execution.status == "TIMED_OUT" and execution.error == "States.Timeout"
    assert "TimeoutSeconds (0.5)" in execution.cause and execution.stop_date is not None
    described = mrun.describe()
    assert described["status"] == "ABORTED" and "stopDate" in described
    items, children = described["itemCounts"], described["executionCounts"]
    assert items["total"] < 200 and items["running"] == 0 and children["running"] == 0
    assert children["aborted"] >= 1  # the children running at the deadline were stopped
    assert items["succeeded"] + items["failed"] + items["aborted"] == items["total"]


def test_an_execution_within_its_timeout_seconds_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    execution, mrun, _, _ = run(12, monkeypatch, timeout_s=30)
    assert execution.status == "SUCCEEDED" and mrun.describe()["status"] == "SUCCEEDED"
