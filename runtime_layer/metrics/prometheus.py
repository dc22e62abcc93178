"""Prometheus metrics for container targets (SageMaker, ECS, `mlfn serve`), scraped from `GET /metrics`.

Everything lives in the provider's own `CollectorRegistry`, so two apps in one process (tests, benchmarks)
never share series and the global default registry stays untouched.

The per-request series are kept by a small collector of its own rather than prometheus-client's
`Counter`/`Histogram` objects: those take a lock per bucket, sum and count on every observation, which
costs more than the rest of mlfn's request handling. Here an observation is one bisect and two additions
under one lock; the scrape builds the cumulative buckets. The exposition format is prometheus-client's.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from itertools import accumulate
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
INFO_LABELS = ("name", "target", "producer", "version")


class Histograms:
    """One histogram family (optionally with a `<name>_total` counter of the same observations) per label set."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float],
                 *, counter: tuple[str, str] | None = None) -> None:
        self.name, self.documentation, self.labels = name, documentation, tuple(labels)
        self.bounds = tuple(float(b) for b in buckets)
        self.counter = counter
        self._les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._series: dict[tuple[str, ...], list[float]] = {}  # label values -> bucket counts..., sum
        self._lock = threading.Lock()

    def observe(self, value: float, labels: tuple[str, ...] = ()) -> None:
        index = bisect_left(self.bounds, value)
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = [0.0] * (len(self.bounds) + 2)
            series[index] += 1
            series[-1] += value

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = [(labels, list(series)) for labels, series in self._series.items()]
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        counter = CounterMetricFamily(*self.counter, labels=self.labels) if self.counter else None
        for labels, series in snapshot:
            cumulative = list(accumulate(series[:-1]))
            histogram.add_metric(list(labels), list(zip(self._les, cumulative, strict=True)), series[-1])
            if counter is not None:
                counter.add_metric(list(labels), cumulative[-1])
        if counter is not None:
            yield counter
        yield histogram


class PrometheusMetrics:
    """Request count and latency by route and status, inference latency, batch rows, model info, process."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._requests = Histograms(
            "mlfn_request_duration_seconds", "Time from request start to response end.", ("route", "status"),
            LATENCY_BUCKETS, counter=("mlfn_requests", "HTTP requests served."),
        )
        self._inference = Histograms(
            "mlfn_inference_duration_seconds", "Time one model run took in onnxruntime.", (), LATENCY_BUCKETS
        )
        self._rows = Histograms("mlfn_batch_rows", "Rows in each model run.", (), ROW_BUCKETS)
        self._batches = Histograms("mlfn_batch_requests", "Requests served by each model run (dynamic batching).",
                                   (), ROW_BUCKETS)
        for collector in (self._requests, self._inference, self._rows, self._batches):
            r.register(collector)
        self._info = Gauge("mlfn_model_info", "The loaded model (always 1).", INFO_LABELS, registry=r)
        self._load = Gauge("mlfn_model_load_seconds", "How long loading the model took.", registry=r)
        self._cold = Gauge("mlfn_cold_start_seconds", "Seconds from process start until the model was ready.",
                           registry=r)
        if process:
            ProcessCollector(registry=r)
        self._statuses: dict[int, str] = {}

    def request(self, route: str, status: int, seconds: float) -> None:
        text = self._statuses.get(status) or self._statuses.setdefault(status, str(status))
        self._requests.observe(seconds, (route, text))

    def inference(self, seconds: float, rows: int) -> None:
        self._inference.observe(seconds)
        self._rows.observe(rows)

    def batch(self, requests: int) -> None:
        """One batched model run served this many requests (only when dynamic batching is on)."""
        self._batches.observe(requests)

    def cold_start(self, seconds: float) -> None:
        self._cold.set(seconds)

    def model_loaded(self, info: Mapping[str, str], seconds: float | None) -> None:
        self._info.labels(*(info.get(k, "") for k in INFO_LABELS)).set(1)
        if seconds is not None:
            self._load.set(seconds)

    def annotate(self, **properties: Any) -> None:
        """Per-request properties have no place in aggregated Prometheus series: ignored."""

    def flush(self) -> None:
        pass

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

