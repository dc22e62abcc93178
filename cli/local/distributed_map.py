"""Distributed Map executions in the emulator: StartExecution of a state machine whose Map state runs in
DISTRIBUTED mode runs that map here, the way the model's batch state machine (infra/batch.py) runs on AWS.

moto 5.2.5 records an execution and leaves it RUNNING; its optional interpreter has no JSON Lines ItemReader and
its ResultWriter writes a manifest without the results. So this executor runs the map itself: the ItemReader's
JSON Lines (or CSV with a header row) object is streamed from the emulator's S3, the ItemBatcher groups up to
MaxItemsPerBatch items under MaxInputBytesPerBatch into `{"Items": [...]}` (plus BatchInput), each batch is one
child execution invoking the Lambda function through the emulator's `lambda.invoke` (the data plane runs it), at
most MaxConcurrency at once, and the ResultWriter writes the children's outputs (FLATTEN: one line per item) as
`<Prefix><map run id>/SUCCEEDED_0.json` (failed children in `FAILED_0.json`) and `manifest.json`.
DescribeExecution shows RUNNING, then SUCCEEDED, FAILED (error `States.ExceedToleratedFailureThreshold` when
more items failed than ToleratedFailurePercentage allows), TIMED_OUT (error `States.Timeout`, past the definition's
top-level TimeoutSeconds) or ABORTED (StopExecution); ListMapRuns and DescribeMapRun show the Map Run with its
itemCounts and executionCounts (a stopped or timed-out execution's Map Run ends ABORTED, and children that were
running count as aborted).

The Map Run is kept on its moto execution, so both survive `mlfn local stop`/`start` with moto's other state;
an execution that was RUNNING when the emulator stopped is ABORTED on the next start (`recover`), with error
`mlfn.EmulatorRestarted` and a cause saying so (AWS has no such event: StopExecution's ABORTED with an error and a
cause is the closest documented outcome).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_CONCURRENCY = 10_000  # a Distributed Map without MaxConcurrency runs up to 10,000 children at once
EMULATED_MAX_CONCURRENCY = 16  # threads this emulator gives one map run at most
COUNTS = ("pending", "running", "succeeded", "failed", "timedOut", "aborted", "total", "resultsWritten",
          "failuresNotRedrivable", "pendingRedrive")
THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"  # LocalStack's AWS-validated words
RESTARTED = "mlfn.EmulatorRestarted"  # the error of an execution the emulator's restart cut short
_status_lock = threading.Lock()  # one final status per execution (its run, StopExecution or the timeout)
_endpoint = ""
_installed = False


@dataclass
class MapRun:
    arn: str
    execution_arn: str
    max_concurrency: int
    tolerated_failure_percentage: float
    status: str = "RUNNING"
    start: Any = None
    stop: Any = None
    items: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    children: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> dict[str, Any]:
        with self.lock:
            doc = {"mapRunArn": self.arn, "executionArn": self.execution_arn, "status": self.status,
                   "startDate": self.start, "maxConcurrency": self.max_concurrency,
                   "toleratedFailurePercentage": self.tolerated_failure_percentage, "toleratedFailureCount": 0,
                   "itemCounts": dict(self.items), "executionCounts": dict(self.children), "redriveCount": 0}
        if self.stop is not None:
            doc["stopDate"] = self.stop
        return doc

    def count(self, what: str, items: int, delta: int = 1) -> None:
        with self.lock:
            self.items[what] += items
            self.children[what] += delta
            if what != "running":
                self.items["running"] -= items
                self.children["running"] -= delta

    def __getstate__(self) -> dict[str, Any]:  # kept with moto's state: everything but the lock
        return {k: v for k, v in self.__dict__.items() if k != "lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, lock=threading.Lock())

    def abort(self, when: Any) -> None:
        """End the run ABORTED: what was still running counts as aborted."""
        with self.lock:
            for counts in (self.items, self.children):
                counts["aborted"] += counts["running"]
                counts["running"] = 0
            self.status, self.stop = "ABORTED", when


def distributed_map(definition: str) -> tuple[str, dict[str, Any]] | None:
    """(state name, state) of the definition's first Map state in DISTRIBUTED mode, or None."""
    try:
        states = json.loads(definition).get("States", {})
    except (ValueError, AttributeError):
        return None
    for name, state in states.items():
        mode = state.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode")
        if state.get("Type") == "Map" and mode == "DISTRIBUTED":
            return name, state
    return None


def resolve(parameters: dict[str, Any], document: Any) -> dict[str, Any]:
    """Parameters with `Name.$` paths (`$.a.b`) taken from the state input."""
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        if key.endswith(".$") and isinstance(value, str) and value.startswith("$"):
            found = document
            for part in [p for p in value[1:].split(".") if p]:
                found = found[part]
            out[key[:-2]] = found
        else:
            out[key] = value
    return out


def timeout_seconds(definition: str) -> float | None:
    """The definition's top-level TimeoutSeconds (how long an execution may run), or None."""
    try:
        value = json.loads(definition).get("TimeoutSeconds")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _map_run_of(execution: Any) -> MapRun | None:
    return getattr(execution, "mlfn_map_run", None)  # set by _execute; pickled with the execution


def _executions(backend: Any) -> Iterator[Any]:
    for machine in backend.state_machines:
        yield from machine.executions


def recover() -> int:
    """After the emulator's state was loaded: an execution of a Distributed Map that was RUNNING when the emulator
    stopped has no runner any more; it ends ABORTED (error `mlfn.EmulatorRestarted`), its Map Run ABORTED.
    Returns how many."""
    from moto.core.utils import utcnow
    from moto.stepfunctions.models import stepfunctions_backends

    from .transform_task import transform_states

    ended = 0
    for regions in list(stepfunctions_backends.values()):
        for backend in list(regions.values()):
            for machine in backend.state_machines:
                if distributed_map(machine.definition) is None and transform_states(machine.definition) is None:
                    continue
                for execution in machine.executions:
                    if execution.status != "RUNNING":
                        continue
                    now = utcnow()
                    execution.status, execution.stop_date = "ABORTED", now
                    execution.error = RESTARTED
                    execution.cause = ("The local emulator stopped while this execution ran (`mlfn local stop`); "
                                       "nothing runs it any more. Start a new execution (`mlfn batch`).")
                    run = _map_run_of(execution)
                    if run is not None and run.status == "RUNNING":
                        run.abort(now)
                    ended += 1
    return ended


def control_url() -> str:
    """This control plane's URL (set by `install`), or "" before it."""
    return _endpoint


def install(endpoint: str) -> None:
    """Patch moto's Step Functions (in this process) to run Distributed Maps; `endpoint` is this control plane's
    URL (the executor reaches S3 and Lambda through it, as a state machine reaches them through AWS)."""
    global _endpoint, _installed
    _endpoint = endpoint
    if _installed:
        return
    from moto.stepfunctions import models

    original = models.StepFunctionBackend.start_execution

    def start_execution(self: Any, state_machine_arn: str, name: str, execution_input: str) -> Any:
        execution = original(self, state_machine_arn, name, execution_input)
        definition = self.describe_state_machine(state_machine_arn).definition
        found = distributed_map(definition)
        if found is not None:
            execution.status = "RUNNING"
            threading.Thread(target=_execute, args=(execution, found[0], found[1], self.region_name,
                                                    timeout_seconds(definition)),
                             name="mlfn-distributed-map", daemon=True).start()
        else:
            _run_transform_tasks(execution, definition, self.region_name)
        return execution

    def describe_map_run(self: Any, map_run_arn: str) -> dict[str, Any]:
        for execution in _executions(self):
            run = _map_run_of(execution)
            if run is not None and run.arn == map_run_arn:
                return run.describe()
        from moto.stepfunctions.exceptions import ResourceNotFound

        raise ResourceNotFound(map_run_arn)

    def list_map_runs(self: Any, execution_arn: str) -> dict[str, Any]:
        run = _map_run_of(self.describe_execution(execution_arn))  # ExecutionDoesNotExist for an unknown one
        items = [] if run is None else [{"executionArn": run.execution_arn, "mapRunArn": run.arn,
                                         "stateMachineArn": run.arn.rsplit(":", 1)[0].replace(":mapRun:",
                                                                                             ":stateMachine:"),
                                         "startDate": run.start, **({"stopDate": run.stop} if run.stop else {})}]
        return {"mapRuns": items}

    models.StepFunctionBackend.start_execution = start_execution  # type: ignore[method-assign]
    models.StepFunctionBackend.describe_map_run = describe_map_run  # type: ignore[method-assign]
    models.StepFunctionBackend.list_map_runs = list_map_runs  # type: ignore[method-assign]
    _stop_date_when_timed_out()
    _installed = True


def _run_transform_tasks(execution: Any, definition: str, region: str) -> None:
    """A state machine of `sagemaker:createTransformJob.sync` tasks (a container model's batch engine) runs too
    (`transform_task`), its TimeoutSeconds kept as for a map."""
    from . import transform_task

    chain = transform_task.transform_states(definition)
    if chain is None:
        return
    execution.status = "RUNNING"
    timeout_s = timeout_seconds(definition)
    if timeout_s is not None:
        timer = threading.Timer(timeout_s, _time_out, args=(execution, timeout_s))
        timer.daemon = True
        timer.start()
    transform_task.start(execution, chain, lambda service: _client(service, region))


def _stop_date_when_timed_out() -> None:
    """moto's DescribeExecution gives `stopDate` for SUCCEEDED, FAILED and ABORTED only; a TIMED_OUT execution has
    ended too (DescribeExecution: stopDate "if the execution already ended")."""
    from moto.stepfunctions import responses

    original = responses.StepFunctionResponse.describe_execution

    def describe_execution(self: Any) -> Any:
        answer = original(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        body = getattr(answer, "result", None)
        if execution.status == "TIMED_OUT" and isinstance(body, dict) and execution.stop_date is not None:
            body["stopDate"] = execution.stop_date
        return answer

    responses.StepFunctionResponse.describe_execution = describe_execution  # type: ignore[method-assign]


def _client(service: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    from ..aws.session import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

    return boto3.client(service, endpoint_url=_endpoint, region_name=region, aws_access_key_id=LOCAL_ACCESS_KEY,
                        aws_secret_access_key=LOCAL_SECRET_KEY,
                        config=Config(retries={"max_attempts": 2}, read_timeout=900, max_pool_connections=64))


def _items(s3: Any, bucket: str, key: str, reader_config: dict[str, Any]) -> Iterator[Any]:
    """The ItemReader's items, streamed: one per JSON line, or one object per CSV row keyed by the header."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    text = io.TextIOWrapper(body, encoding="utf-8")
    kind = reader_config.get("InputType", "JSONL")
    if kind == "CSV":
        yield from csv.DictReader(text)
        return
    for line in text:
        if line.strip():
            yield json.loads(line)


def _batches(items: Iterator[Any], batcher: dict[str, Any], batch_input: Any) -> Iterator[list[Any]]:
    most = int(batcher.get("MaxItemsPerBatch") or 0) or (1 if not batcher else 1 << 30)
    limit = int(batcher.get("MaxInputBytesPerBatch") or 256 * 1024)
    batch: list[Any] = []
    size = 0
    for item in items:
        grown = len(json.dumps(item)) + 1
        if batch and (len(batch) >= most or size + grown > limit):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += grown
    if batch:
        yield batch


def _time_out(execution: Any, timeout_s: float) -> None:
    """TimeoutSeconds has passed: a still RUNNING execution is TIMED_OUT (error `States.Timeout`)."""
    from moto.core.utils import utcnow

    with _status_lock:
        if execution.status == "RUNNING":
            execution.status, execution.stop_date = "TIMED_OUT", utcnow()
            execution.error = "States.Timeout"
            execution.cause = f"The execution ran longer than the state machine's TimeoutSeconds ({timeout_s:g})."


def _execute(execution: Any, state_name: str, state: dict[str, Any], region: str,
             timeout_s: float | None = None) -> None:
    """Run the map of one execution to its end (or its TimeoutSeconds), recording the Map Run and the execution's
    status."""
    from moto.core.utils import utcnow

    machine = execution.state_machine_arn.split(":")[-1]
    run = MapRun(arn=f"arn:aws:states:{region}:{execution.account_id}:mapRun:{machine}/{state_name}:{uuid.uuid4()}",
                 execution_arn=execution.execution_arn,
                 max_concurrency=int(state.get("MaxConcurrency") or 0),
                 tolerated_failure_percentage=float(state.get("ToleratedFailurePercentage") or 0), start=utcnow())
    execution.mlfn_map_run = run  # the Map Run is kept on its execution: with moto's state across a restart
    timer = None
    if timeout_s is not None:
        timer = threading.Timer(timeout_s, _time_out, args=(execution, timeout_s))
        timer.daemon = True
        timer.start()
    output: dict[str, Any] | None = None
    error: tuple[str, str] | None = None
    try:
        output = _map(execution, state, run, region)
    except Exception as exc:  # the ItemReader or ResultWriter failed: the execution fails with the reason
        error = "States.Runtime", f"{type(exc).__name__}: {exc}"[:32_000]
    finally:
        if timer is not None:
            timer.cancel()
    with _status_lock:
        failed, total = run.items["failed"], run.items["total"]
        if execution.status != "RUNNING":  # StopExecution (ABORTED) or TimeoutSeconds (TIMED_OUT)
            run.abort(utcnow())
            return
        if error is not None:
            run.status = execution.status = "FAILED"
            execution.error, execution.cause = error
        elif failed and failed * 100 > run.tolerated_failure_percentage * total:
            run.status = execution.status = "FAILED"
            execution.error = "States.ExceedToleratedFailureThreshold"
            execution.cause = THRESHOLD_CAUSE  # the Map Run's itemCounts say how many failed
        else:
            run.status = execution.status = "SUCCEEDED"
            execution.output = json.dumps(output)
        run.stop = execution.stop_date = utcnow()


def _invoke(lam: Any, function: str, payload: dict[str, Any]) -> tuple[bool, Any]:
    try:
        answer = lam.invoke(FunctionName=function, Payload=json.dumps(payload).encode())
        body = answer["Payload"].read()
        result = json.loads(body) if body else None
        if answer.get("FunctionError"):
            return False, {"Error": answer["FunctionError"], "Cause": result}
        return True, result
    except Exception as exc:
        return False, {"Error": type(exc).__name__, "Cause": str(exc)}


def _map(execution: Any, state: dict[str, Any], run: MapRun, region: str) -> dict[str, Any]:
    document = json.loads(execution.execution_input or "{}")
    reader = state.get("ItemReader", {})
    where = resolve(reader.get("Parameters", {}), document)
    task = next(iter(state["ItemProcessor"]["States"].values()))
    function = task["Resource"]
    if function.startswith("arn:aws:states:::lambda:invoke"):
        function = resolve(task.get("Parameters", {}), {})["FunctionName"]
    s3, lam = _client("s3", region), _client("lambda", region)
    batcher = state.get("ItemBatcher", {})
    width = min(run.max_concurrency or DEFAULT_MAX_CONCURRENCY, EMULATED_MAX_CONCURRENCY)
    writer = state.get("ResultWriter") or {}
    results = _Results(writer.get("WriterConfig", {}))
    pending: deque[Future[tuple[bool, Any]]] = deque()  # in input order, no more than 2 x width read ahead
    with results, ThreadPoolExecutor(width, thread_name_prefix="mlfn-map-child") as pool:
        for batch in _batches(_items(s3, where["Bucket"], where["Key"], reader.get("ReaderConfig", {})), batcher,
                              batcher.get("BatchInput")):
            if execution.status != "RUNNING":  # stopped or timed out: no further child starts
                break
            payload: dict[str, Any] = {"Items": batch}
            if batcher.get("BatchInput"):
                payload["BatchInput"] = batcher["BatchInput"]
            with run.lock:
                for counts, n in ((run.items, len(batch)), (run.children, 1)):
                    counts["total"] += n
                    counts["running"] += n
            pending.append(pool.submit(_child, lam, function, payload, run, execution))
            while len(pending) >= 2 * width:
                results.add(*pending.popleft().result())
        while pending:
            results.add(*pending.popleft().result())
        return _write(s3, writer, document, run, results)


def _child(lam: Any, function: str, payload: dict[str, Any], run: MapRun, execution: Any) -> tuple[bool, Any]:
    ok, result = _invoke(lam, function, payload)
    if execution.status != "RUNNING":  # the execution ended meanwhile: Step Functions stopped this child
        run.count("aborted", len(payload["Items"]))
        return False, {"Error": "States.Aborted" if execution.status == "ABORTED" else execution.status,
                       "Cause": "the parent execution ended while this child ran"}
    run.count("succeeded" if ok else "failed", len(payload["Items"]))
    return ok, result


class _Results:
    """The children's outputs, in input order, spooled to temporary files (memory stays flat): succeeded ones
    (FLATTEN: one entry per item of an array output) and failed ones (as they are)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.flatten = config.get("Transformation") == "FLATTEN"
        self.lines = config.get("OutputType") == "JSONL"
        self.files = {kind: tempfile.TemporaryFile() for kind in ("SUCCEEDED", "FAILED")}  # noqa: SIM115 (closed on exit)
        self.counts = dict.fromkeys(self.files, 0)

    def add(self, ok: bool, result: Any) -> None:
        kind = "SUCCEEDED" if ok else "FAILED"
        for one in result if ok and self.flatten and isinstance(result, list) else [result]:
            text = json.dumps(one, separators=(",", ":"))
            if not self.lines:
                text = ("[" if not self.counts[kind] else ",") + text
            self.files[kind].write(text.encode() + (b"\n" if self.lines else b""))
            self.counts[kind] += 1

    def upload(self, s3: Any, bucket: str, key: str, kind: str) -> int | None:
        """Put one kind's file at `key`; its size, or None when it holds nothing."""
        if not self.counts[kind]:
            return None
        spool = self.files[kind]
        if not self.lines:
            spool.write(b"]")
        size = spool.tell()
        spool.seek(0)
        s3.put_object(Bucket=bucket, Key=key, Body=spool)
        return size

    def __enter__(self) -> _Results:
        return self

    def __exit__(self, *exc: object) -> None:
        for spool in self.files.values():
            spool.close()


def _write(s3: Any, writer: dict[str, Any], document: Any, run: MapRun, results: _Results) -> dict[str, Any]:
    """The ResultWriter's objects; returns the Map state's output."""
    if "Parameters" not in writer:
        return {"MapRunArn": run.arn}
    where = resolve(writer["Parameters"], document)
    prefix = str(where.get("Prefix", ""))
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    folder = f"{prefix}{run.arn.rsplit(':', 1)[1]}/"
    files: dict[str, list[dict[str, Any]]] = {"SUCCEEDED": [], "FAILED": [], "PENDING": []}
    for kind in ("SUCCEEDED", "FAILED"):
        key = f"{folder}{kind}_0.json"
        size = results.upload(s3, where["Bucket"], key, kind)
        if size is not None:
            files[kind].append({"Key": key, "Size": size})
    with run.lock:
        run.items["resultsWritten"] = run.items["succeeded"] + run.items["failed"]
        run.children["resultsWritten"] = run.children["succeeded"] + run.children["failed"]
    manifest = {"DestinationBucket": where["Bucket"], "MapRunArn": run.arn, "ResultFiles": files}
    s3.put_object(Bucket=where["Bucket"], Key=f"{folder}manifest.json", Body=json.dumps(manifest).encode())
    return {"MapRunArn": run.arn, "ResultWriterDetails": {"Bucket": where["Bucket"], "Key": f"{folder}manifest.json"}}
