"""Step Functions executions of a state machine whose states are `arn:aws:states:::sagemaker:createTransformJob.sync`
tasks (a container model's batch state machine, infra/batch.py) run here: moto records them and leaves them RUNNING.

Each task's `Parameters` are resolved against the state input (`Name.$` paths, `$$.Execution.Name` and the other
context fields), CreateTransformJob is called on this control plane (the emulator runs the job on the model's image,
`transform_runner`), and the task waits for the job to end (`.sync`): `Completed` makes DescribeTransformJob's answer
the task's result (ResultPath, OutputPath), `Failed` or `Stopped` fails the execution with error
`States.TaskFailed` and the job's description (its status and FailureReason) as cause; a refused CreateTransformJob
fails it with `SageMaker.<error code>`. StopExecution (ABORTED) stops the running job (StopTransformJob).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

RESOURCE = "arn:aws:states:::sagemaker:createTransformJob"
SYNC = RESOURCE + ".sync"
JOB_FAILED = "States.TaskFailed"  # a .sync job that ended Failed or Stopped
PATH_FAILED = "States.ParameterPathFailure"  # a `Name.$` path that does not resolve
POLL_S = 1.0


def transform_states(definition: str) -> list[tuple[str, dict[str, Any]]] | None:
    """The states from StartAt to the end when every one is a createTransformJob(.sync) Task, else None."""
    try:
        document = json.loads(definition)
        states, name = document["States"], document["StartAt"]
    except (ValueError, KeyError, TypeError):
        return None
    chain: list[tuple[str, dict[str, Any]]] = []
    while name is not None:
        state = states.get(name) or {}
        if state.get("Type") != "Task" or state.get("Resource") not in (RESOURCE, SYNC) or len(chain) > len(states):
            return None
        chain.append((name, state))
        name = None if state.get("End") else state.get("Next")
    return chain or None


def resolve(value: Any, document: Any, context: dict[str, Any]) -> Any:
    """Parameters with every `Name.$` path (`$.a.b` in the state input, `$$.a.b` in the context) resolved."""
    if isinstance(value, list):
        return [resolve(v, document, context) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key.endswith(".$") and isinstance(item, str) and item.startswith("$"):
            out[key[:-2]] = _path(context, item[2:]) if item.startswith("$$") else _path(document, item[1:])
        else:
            out[key] = resolve(item, document, context)
    return out


def _path(document: Any, path: str) -> Any:
    found = document
    for part in [p for p in path.split(".") if p]:
        found = found[part]
    return found


def _place(document: Any, result: Any, result_path: Any) -> Any:
    """The state's output: ResultPath `$` (default) is the result, null the input, `$.a.b` the input with it there."""
    if result_path is None:
        return document
    if result_path == "$":
        return result
    out = dict(document) if isinstance(document, dict) else {}
    target = out
    parts = [p for p in str(result_path)[1:].split(".") if p]
    for part in parts[:-1]:
        target[part] = dict(target.get(part) or {})
        target = target[part]
    target[parts[-1]] = result
    return out


def start(execution: Any, chain: list[tuple[str, dict[str, Any]]], client: Any) -> None:
    """Run the execution's transform tasks on a thread of its own."""
    threading.Thread(target=_execute, args=(execution, chain, client), name="mlfn-transform-task",
                     daemon=True).start()


def _execute(execution: Any, chain: list[tuple[str, dict[str, Any]]], client: Any) -> None:
    from moto.core.utils import iso_8601_datetime_with_milliseconds, utcnow

    from .distributed_map import _status_lock

    sagemaker = client("sagemaker")
    document: Any = json.loads(execution.execution_input or "{}")
    context = {"Execution": {"Id": execution.execution_arn, "Name": execution.name, "Input": document,
                             "StartTime": iso_8601_datetime_with_milliseconds(execution.start_date)
                             if not isinstance(execution.start_date, str) else execution.start_date},
               "StateMachine": {"Id": execution.state_machine_arn,
                                "Name": execution.state_machine_arn.rsplit(":", 1)[-1]}}
    error: tuple[str, str] | None = None
    try:
        for name, state in chain:
            context["State"] = {"Name": name, "EnteredTime": iso_8601_datetime_with_milliseconds(utcnow())}
            try:
                parameters = resolve(state.get("Parameters") or {}, document, context)
            except (KeyError, TypeError, IndexError) as exc:
                error = PATH_FAILED, f"The JSONPath in field Parameters of state {name} could not be found: {exc}"
                break
            result, error = _run_task(execution, sagemaker, parameters, state["Resource"] == SYNC)
            if error is not None:
                break
            document = _place(document, result, state.get("ResultPath", "$"))
            if state.get("OutputPath"):
                document = _path(document, str(state["OutputPath"])[1:])
    except Exception as exc:  # a path that does not resolve, a bad parameter: the execution fails with the reason
        error = "States.Runtime", f"{type(exc).__name__}: {exc}"[:32_000]
    with _status_lock:
        if execution.status != "RUNNING":  # StopExecution or TimeoutSeconds ended it meanwhile
            return
        if error is not None:
            execution.status = "FAILED"
            execution.error, execution.cause = error
        else:
            execution.status = "SUCCEEDED"
            execution.output = json.dumps(document, default=str)
        execution.stop_date = utcnow()


def _run_task(execution: Any, sagemaker: Any, parameters: dict[str, Any],
              sync: bool) -> tuple[Any, tuple[str, str] | None]:
    """CreateTransformJob, then (`.sync`) DescribeTransformJob until the job ends; (result, None) or (None, error)."""
    try:
        created = sagemaker.create_transform_job(**parameters)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
        return None, (f"SageMaker.{code}", str(exc))
    if not sync:
        return {"TransformJobArn": created["TransformJobArn"]}, None
    name = parameters["TransformJobName"]
    while True:
        job = sagemaker.describe_transform_job(TransformJobName=name)
        status = job["TransformJobStatus"]
        if execution.status != "RUNNING" and status in ("InProgress",):
            sagemaker.stop_transform_job(TransformJobName=name)  # the execution was stopped: so is its job
            return None, None
        if status == "Completed":
            job.pop("ResponseMetadata", None)
            return job, None
        if status in ("Failed", "Stopped"):
            job.pop("ResponseMetadata", None)
            return None, (JOB_FAILED, json.dumps(job, default=str))
        time.sleep(POLL_S)
