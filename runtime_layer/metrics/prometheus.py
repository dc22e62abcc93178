"""Prometheus metrics for container targets (SageMaker, ECS, `mlfn serve`), scraped from `GET /metrics`.

Everything lives in the provider's own `CollectorRegistry`, so two apps in one process (tests, benchmarks)
never share counters and the global default registry stays untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
INFO_LABELS = ("name", "target", "producer", "version")


class PrometheusMetrics:
    """Request count and latency by route and status, inference latency, batch rows, model info."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._requests = Counter("mlfn_requests", "HTTP requests served.", ("route", "status"), registry=r)
        self._latency = Histogram(
            "mlfn_request_duration_seconds", "Time from request start to response end.", ("route", "status"),
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self._inference = Histogram(
            "mlfn_inference_duration_seconds", "Time one model run took (decode, session.run, encode).",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self._rows = Histogram("mlfn_batch_rows", "Rows in each model run.", buckets=ROW_BUCKETS, registry=r)
        self._info = Gauge("mlfn_model_info", "The loaded model (always 1).", INFO_LABELS, registry=r)
        self._load = Gauge("mlfn_model_load_seconds", "How long loading the model took.", registry=r)
        self._cold = Gauge("mlfn_cold_start_seconds", "How long the process took to get ready.", registry=r)
        if process:
            ProcessCollector(registry=r)
        # labels() takes a lock and builds a key on every call: keep the children per (route, status).
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._lock = threading.Lock()

    def request(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                labels = (route, str(status))
                child = self._children.setdefault(key, (self._requests.labels(*labels), self._latency.labels(*labels)))
        child[0].inc()
        child[1].observe(seconds)

    def inference(self, seconds: float, rows: int) -> None:
        self._inference.observe(seconds)
        self._rows.observe(rows)

    def cold_start(self, seconds: float) -> None:
        self._cold.set(seconds)

    def model_loaded(self, info: Mapping[str, str], seconds: float) -> None:
        self._info.labels(*(info.get(k, "") for k in INFO_LABELS)).set(1)
        self._load.set(seconds)

    def flush(self) -> None:
        pass

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
