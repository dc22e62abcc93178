"""The metrics providers on their own: EMF documents and the Prometheus histograms' bucket arithmetic."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from mlfn.runtime.metrics import MetricsProvider, NoopMetrics
from mlfn.runtime.metrics.emf import MAX_VALUES, EmfMetrics
from mlfn.runtime.metrics.prometheus import PrometheusMetrics


def test_every_provider_satisfies_the_protocol() -> None:
    for provider in (NoopMetrics(), EmfMetrics("m"), PrometheusMetrics(process=False)):
        assert isinstance(provider, MetricsProvider)
    assert NoopMetrics().exposition() is None and EmfMetrics().exposition() is None


def test_emf_writes_one_line_per_flush_and_nothing_when_idle() -> None:
    lines: list[str] = []
    emf = EmfMetrics("iris", write=lines.append)
    emf.flush()
    assert lines == []
    emf.request("/invocations", 503, 0.0021)
    for i in range(MAX_VALUES + 5):
        emf.inference(0.001, i)
    emf.annotate(RequestId="r-1")
    emf.flush()
    emf.flush()
    assert len(lines) == 1 and lines[0].endswith("\n")
    doc = json.loads(lines[0])
    assert doc["Model"] == "iris" and doc["RequestId"] == "r-1" and doc["Status"] == 503
    assert doc["ServerErrors"] == 1 and doc["ClientErrors"] == 0 and doc["Latency"] == 2.1
    assert len(doc["BatchRows"]) == MAX_VALUES  # EMF's limit per metric
    assert doc["ColdStart"] == 0 and "InitDuration" not in doc
    declared = [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert set(declared) == {"Requests", "Latency", "ClientErrors", "ServerErrors", "InferenceLatency", "BatchRows",
                             "ColdStart"}


def test_emf_model_name_comes_from_the_loaded_model() -> None:
    lines: list[str] = []
    emf = EmfMetrics(write=lines.append)
    emf.model_loaded({"name": "digits"}, 0.2)
    emf.cold_start(0.75)
    emf.flush()  # a cold start alone is worth a line
    doc = json.loads(lines[0])
    assert doc["Model"] == "digits" and doc["ColdStart"] == 1 and doc["InitDuration"] == 750.0


def test_prometheus_buckets_are_cumulative_and_inclusive() -> None:
    metrics = PrometheusMetrics(process=False)
    for seconds in (0.0005, 0.0006, 0.002, 100.0):
        metrics.request("/ping", 200, seconds)
    metrics.request("/ping", 503, 0.1)
    text = metrics.exposition()[0].decode()
    samples = {(s.name, s.labels.get("le"), s.labels.get("status")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples
               if s.labels.get("route") == "/ping"}
    assert samples[("mlfn_request_duration_seconds_bucket", "0.0005", "200")] == 1  # le is inclusive
    assert samples[("mlfn_request_duration_seconds_bucket", "0.001", "200")] == 2
    assert samples[("mlfn_request_duration_seconds_bucket", "60.0", "200")] == 3
    assert samples[("mlfn_request_duration_seconds_bucket", "+Inf", "200")] == 4
    assert samples[("mlfn_requests_total", None, "200")] == 4 and samples[("mlfn_requests_total", None, "503")] == 1
    assert abs(samples[("mlfn_request_duration_seconds_sum", None, "200")] - 100.0031) < 1e-9
