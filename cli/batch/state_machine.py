"""A batch as one execution of the model's batch state machine (stack output `BatchStateMachineArn`). A Lambda
model's Distributed Map: start it with `{"key": ..., "outputPrefix": ...}`, then follow DescribeExecution
(RUNNING, then SUCCEEDED, FAILED, TIMED_OUT or ABORTED) and the Map Run's item counts (ListMapRuns and
DescribeMapRun) until it ends. A container model's `createTransformJob.sync` task: start it with
`{"input": "s3://...", "output": "s3://..."}` and follow the execution and its transform job (DescribeTransformJob,
named after the execution). The execution runs without this process: `--no-wait` returns its ARN at once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .locations import S3Location

OUTPUT = "BatchStateMachineArn"
ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
POLL_S = 1.0


class StateMachineError(Exception):
    """The input does not fit the state machine (a message for the user)."""


def reader_bucket(sfn: Any, arn: str) -> str | None:
    """The bucket the state machine's Distributed Map reads (its ItemReader's fixed Bucket), if it names one."""
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])
    for state in definition.get("States", {}).values():
        bucket = state.get("ItemReader", {}).get("Parameters", {}).get("Bucket")
        if isinstance(bucket, str):
            return bucket
    return None


def check_bucket(bucket: str | None, source: S3Location, target: S3Location) -> None:
    """Refuse an input or output outside the one bucket the batch engine's roles reach (`[batch] bucket`)."""
    for where, flag in ((source, "--input"), (target, "--output")):
        if bucket is not None and where.bucket != bucket:
            raise StateMachineError(f"{flag} {where.uri}: the batch state machine reads and writes bucket {bucket!r} "
                                    f"([batch] bucket) only; expected an s3://{bucket}/... location")


def execution_input(s3: Any, sfn: Any, arn: str, source: S3Location, target: S3Location) -> dict[str, str]:
    """`{"key", "outputPrefix"}` for the one JSON Lines object `source` names (or the only one under it)."""
    check_bucket(reader_bucket(sfn, arn), source, target)
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket,
                                                                                  Prefix=source.prefix)
            for item in page.get("Contents", []) if not item["Key"].endswith("/")]
    if source.prefix in keys:
        keys = [source.prefix]
    if len(keys) != 1:
        raise StateMachineError(f"--input {source.uri}: the batch state machine reads one JSON Lines object per "
                                f"execution; expected one object, found {len(keys)}")
    return {"key": keys[0], "outputPrefix": target.prefix}


def start(sfn: Any, arn: str, document: dict[str, str]) -> str:
    return str(sfn.start_execution(stateMachineArn=arn, input=json.dumps(document))["executionArn"])


def map_run(sfn: Any, execution_arn: str) -> dict[str, Any] | None:
    """The execution's Map Run (DescribeMapRun), or None before it starts."""
    runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
    return sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]) if runs else None


def _poll(sfn: Any, execution_arn: str, progress: Callable[[dict[str, Any]], tuple[str, float, str]],
          say: Callable[[str], None] | None, poll_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """DescribeExecution until the execution ends, saying `progress(execution)`'s line (with its rate) on change;
    (the last DescribeExecution answer, the summary's start)."""
    started = time.perf_counter()
    last = ""
    while True:
        execution = sfn.describe_execution(executionArn=execution_arn)
        line, done, unit = progress(execution)
        if say and line != last:
            say(f"{line} ({done / max(time.perf_counter() - started, 1e-9):,.1f} {unit})")
            last = line
        if execution["status"] in ENDED:
            break
        time.sleep(poll_s)
    return execution, {"executionArn": execution_arn, "status": execution["status"],
                       "Seconds": round(time.perf_counter() - started, 3)}


def follow(sfn: Any, execution_arn: str, say: Callable[[str], None] | None,
           poll_s: float = POLL_S) -> dict[str, Any]:
    """Poll until the execution ends (Ctrl-C stops following, not the execution); returns the summary."""
    found: dict[str, Any] = {}

    def progress(execution: dict[str, Any]) -> tuple[str, float, str]:
        found["run"] = run = map_run(sfn, execution_arn)
        items = (run or {}).get("itemCounts", {})
        return (f"mlfn batch: {execution['status']}: {items.get('succeeded', 0):,} of {items.get('total', 0):,} "
                f"items succeeded, {items.get('failed', 0):,} failed",
                items.get("succeeded", 0) + items.get("failed", 0), "items/s")

    execution, summary = _poll(sfn, execution_arn, progress, say, poll_s)
    run = found.get("run")
    for name in ("error", "cause", "output"):
        if name in execution:
            summary[name] = execution[name]
    if run is not None:
        summary.update(mapRunArn=run["mapRunArn"], mapRunStatus=run["status"], itemCounts=run["itemCounts"],
                       executionCounts=run["executionCounts"])
    return summary


def transform_input(source: S3Location, target: S3Location) -> dict[str, str]:
    """The execution input of a container model's batch state machine (a `createTransformJob.sync` task)."""
    return {"input": source.uri, "output": target.uri}


def _objects(s3: Any, where: S3Location, suffix: str = "") -> int:
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=where.bucket, Prefix=where.prefix):
        count += sum(1 for item in page.get("Contents", [])
                     if not item["Key"].endswith("/") and (not suffix or item["Key"].endswith(suffix)))
    return count


def follow_transform(sfn: Any, sagemaker: Any, s3: Any, execution_arn: str, source: S3Location, target: S3Location,
                     say: Callable[[str], None] | None, poll_s: float = POLL_S) -> dict[str, Any]:
    """Poll the execution and its transform job (named after the execution) until the execution ends; progress is
    the job's status and the input objects whose `.out` is stored."""
    name = execution_arn.rsplit(":", 1)[-1]
    total = _objects(s3, source) if say else 0
    job: dict[str, Any] = {}

    def progress(execution: dict[str, Any]) -> tuple[str, float, str]:
        try:
            job.update(sagemaker.describe_transform_job(TransformJobName=name))
        except Exception as exc:  # not created yet (ValidationException): keep polling
            if getattr(exc, "response", {}).get("Error", {}).get("Code") not in ("ValidationException",
                                                                                  "ResourceNotFound"):
                raise
        done = _objects(s3, target, ".out") if say else 0
        return (f"mlfn batch: {execution['status']}: transform job {name} "
                f"{job.get('TransformJobStatus', 'not started')}, {done:,} of {total:,} objects done", done,
                "objects/s")

    execution, summary = _poll(sfn, execution_arn, progress, say, poll_s)
    summary.update(Engine="SageMaker Batch Transform (the stack's state machine)", TransformJobName=name)
    for field in ("TransformJobStatus", "FailureReason", "TransformJobArn"):
        if job.get(field):
            summary[field] = job[field]
    for field in ("error", "cause"):
        if field in execution:
            summary[field] = execution[field]
    return summary
