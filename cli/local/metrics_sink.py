"""Sandbox metrics into the emulator's CloudWatch, so its alarms (`cli/local/alarms.py`) see what AWS's would.

Three sources, all sent with PutMetricData (boto3, to the emulator's moto) in batches from a background thread:

- the Lambda service metrics of each invocation ("Types of metrics for Lambda functions"): `Invocations` (not for a
  throttled call), `Errors` (a function error: 1, else 0), `Duration` (ms, not for a throttled call), `Throttles`,
  in namespace `AWS/Lambda` under the dimension sets `FunctionName`, `FunctionName`+`Resource` (`name:qualifier`,
  for a call through a version or alias) and, for a call through an alias, `FunctionName`+`Resource`+
  `ExecutedVersion`;
- Embedded Metric Format lines a sandbox writes ("Specification: Embedded metric format"): each
  `_aws.CloudWatchMetrics` directive gives a namespace, dimension sets and metric names whose values (a number or an
  array of numbers) are members of the same JSON object; `_aws.Timestamp` is epoch milliseconds;
- the SageMaker endpoints' and ECS services' requests (`front_metrics`: AWS/SageMaker, AWS/ApiGateway,
  AWS/ApplicationELB), reported by `ContainerEndpoint` through `DataPlane.meter_front`.

The data plane (with a control plane) calls `record_invocation` per call (`DataPlane.meter`) and `record_log_line`
per log line of a sandbox (`DataPlane._forward`). `flush()` sends what is buffered now; tests call it before they
wait on an alarm.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .front_metrics import FrontCall, front_datums

LOG = logging.getLogger("mlfn.local.metrics")
LAMBDA_NAMESPACE = "AWS/Lambda"
MAX_DATUMS = 1000  # PutMetricData: at most 1,000 metrics per request


@dataclass(frozen=True)
class Invocation:
    """One call as Lambda meters it."""

    function: str
    executed_version: str
    duration_ms: float = 0.0
    error: bool = False
    throttled: bool = False
    qualifier: str = ""  # the alias or version the caller named ("" for the unqualified function)
    timestamp: float = 0.0  # epoch seconds; 0: now


def _dimensions(**values: str) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v} for k, v in values.items()]


def lambda_datums(call: Invocation) -> list[dict[str, Any]]:
    """The AWS/Lambda datums of one call (PutMetricData `MetricData` entries)."""
    stamp = datetime.fromtimestamp(call.timestamp, UTC) if call.timestamp else datetime.now(UTC)
    sets = [_dimensions(FunctionName=call.function)]
    if call.qualifier:
        resource = f"{call.function}:{call.qualifier}"
        sets.append(_dimensions(FunctionName=call.function, Resource=resource))
        if call.qualifier != call.executed_version:  # an alias
            sets.append(_dimensions(FunctionName=call.function, Resource=resource,
                                    ExecutedVersion=call.executed_version))
    values: list[tuple[str, float, str]] = [("Throttles", float(call.throttled), "Count")]
    if not call.throttled:
        values += [("Invocations", 1.0, "Count"), ("Errors", float(call.error), "Count"),
                   ("Duration", call.duration_ms, "Milliseconds")]
    return [{"MetricName": name, "Dimensions": dims, "Value": value, "Unit": unit, "Timestamp": stamp}
            for dims in sets for name, value, unit in values]


def emf_datums(line: str) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, datum) pairs of one EMF log line; [] for a line that is not an EMF document."""
    text = line.strip()
    if not text.startswith("{") or '"_aws"' not in text:
        return []
    try:
        doc = json.loads(text)
        meta = doc["_aws"]
        stamp = datetime.fromtimestamp(float(meta["Timestamp"]) / 1000, UTC)
        directives = meta["CloudWatchMetrics"]
    except (ValueError, KeyError, TypeError):
        return []
    out: list[tuple[str, dict[str, Any]]] = []
    for directive in directives:
        for dim_set in directive.get("Dimensions") or [[]]:
            dims = [{"Name": d, "Value": str(doc[d])} for d in dim_set if d in doc]
            for metric in directive.get("Metrics", []):
                name = metric.get("Name")
                raw = doc.get(name)
                values = raw if isinstance(raw, list) else [raw]
                for value in values:
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        datum = {"MetricName": name, "Dimensions": dims, "Value": float(value), "Timestamp": stamp}
                        if metric.get("Unit") and metric["Unit"] != "None":
                            datum["Unit"] = metric["Unit"]
                        out.append((directive["Namespace"], datum))
    return out


class MetricsSink:
    """Buffers datums and sends them to CloudWatch (a boto3 client) every `interval_s`, and on `flush()`."""

    def __init__(self, cloudwatch: Any, *, interval_s: float = 0.05) -> None:
        self.cloudwatch, self.interval_s = cloudwatch, interval_s
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def record_invocation(self, call: Invocation) -> None:
        self.record(LAMBDA_NAMESPACE, lambda_datums(call))

    def record_log_line(self, line: str) -> None:
        self.record_pairs(emf_datums(line))

    def record_front(self, call: FrontCall) -> None:
        """One request to a SageMaker endpoint or ECS service: its fronts' metrics (`front_metrics`)."""
        self.record_pairs(front_datums(call))

    def record_pairs(self, pairs: list[tuple[str, dict[str, Any]]]) -> None:
        with self._lock:
            for namespace, datum in pairs:
                self._pending.setdefault(namespace, []).append(datum)

    def record(self, namespace: str, datums: list[dict[str, Any]]) -> None:
        """Any PutMetricData datums of one namespace."""
        with self._lock:
            self._pending.setdefault(namespace, []).extend(datums)

    def flush(self) -> None:
        with self._send_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            for namespace, datums in pending.items():
                for start in range(0, len(datums), MAX_DATUMS):
                    self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=datums[start:start + MAX_DATUMS])
                    self.sent += len(datums[start:start + MAX_DATUMS])

    def start(self) -> MetricsSink:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="mlfn-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except Exception:  # a refused batch must not end metrics for the rest of the run
                LOG.exception("sending metrics failed")
