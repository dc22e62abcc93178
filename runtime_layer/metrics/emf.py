"""CloudWatch Embedded Metric Format for Lambda, where nothing can scrape Prometheus.

`flush()` writes one JSON line per invocation to stdout; Lambda ships stdout to CloudWatch Logs, which turns
the `_aws.CloudWatchMetrics` block into metrics in namespace `mlfn` with the dimension `Model`. The first
invocation of a sandbox carries `ColdStart = 1` and `InitDuration`; later ones `ColdStart = 0`, so the
metric's average is the cold-start rate. Route, status and request id ride along as properties, which Logs
Insights can query without costing a metric series each.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

NAMESPACE = "mlfn"
MAX_VALUES = 100  # EMF accepts at most 100 values per metric in one line
UNITS = {
    "Requests": "Count",
    "Latency": "Milliseconds",
    "ClientErrors": "Count",
    "ServerErrors": "Count",
    "InferenceLatency": "Milliseconds",
    "BatchRows": "Count",
    "ColdStart": "Count",
    "InitDuration": "Milliseconds",
}


def _stdout(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


class EmfMetrics:
    """Collects one invocation's values and writes them as one EMF line on `flush()`."""

    def __init__(
        self, model: str = "unknown", *, namespace: str = NAMESPACE, write: Callable[[str], None] | None = None
    ) -> None:
        self.model = model
        self.namespace = namespace
        self._write = write or _stdout
        self._values: dict[str, list[float]] = {}
        self._properties: dict[str, Any] = {}
        self._cold_pending: float | None = None
        self._lock = threading.Lock()

    def _add(self, name: str, value: float) -> None:
        values = self._values.setdefault(name, [])
        if len(values) < MAX_VALUES:
            values.append(value)

    def request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._add("Requests", 1)
            self._add("Latency", round(seconds * 1000, 3))
            self._add("ClientErrors", int(400 <= status < 500))
            self._add("ServerErrors", int(status >= 500))
            self._properties["Route"] = route
            self._properties["Status"] = status

    def inference(self, seconds: float, rows: int) -> None:
        with self._lock:
            self._add("InferenceLatency", round(seconds * 1000, 3))
            self._add("BatchRows", rows)

    def batch(self, requests: int) -> None:
        """Lambda serves one request per sandbox and never batches: nothing to record."""

    def cold_start(self, seconds: float) -> None:
        with self._lock:
            self._cold_pending = seconds

    def model_loaded(self, info: Mapping[str, str], seconds: float | None) -> None:
        self.model = info.get("name", self.model)

    def annotate(self, **properties: Any) -> None:
        """Properties for the next line only (request id, function version, ...); never dimensions."""
        with self._lock:
            self._properties.update(properties)

    def flush(self) -> None:
        with self._lock:
            values, properties, cold = self._values, self._properties, self._cold_pending
            self._values, self._properties, self._cold_pending = {}, {}, None
        if not values and cold is None:
            return
        values["ColdStart"] = [int(cold is not None)]
        if cold is not None:
            values["InitDuration"] = [round(cold * 1000, 3)]
        self._write(self.render(values, properties) + "\n")

    def render(self, values: Mapping[str, list[float]], properties: Mapping[str, Any]) -> str:
        """One EMF document: the metric directive, the dimension value, the metric values and properties."""
        document: dict[str, Any] = {
            **properties,
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["Model"]],
                    "Metrics": [{"Name": name, "Unit": UNITS.get(name, "None")} for name in values],
                }],
            },
            "Model": self.model,
        }
        for name, vals in values.items():
            document[name] = vals[0] if len(vals) == 1 else vals
        return orjson.dumps(document).decode()

    def exposition(self) -> tuple[bytes, str] | None:
        return None
