"""Dynamic batching: concurrent requests through a real server get their own answers, equal to direct runs,
while running as shared batches; bad input is answered on its own; non-batchable models never batch.

`Batcher` itself is also driven directly from threads on a real onnxruntime model, where what formed (the
batches and requests it counts) can be read without HTTP.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlfn.runtime.batching import Batcher, batching_enabled, install, signature, split
from mlfn.runtime.errors import ModelError
from mlfn.runtime.service import InferenceService

CONCURRENCY = 24


def _batch_counts(metrics_text: str) -> dict[str, float]:
    """`mlfn_batch_requests` bucket counts by `le`, from the Prometheus exposition."""
    found = re.findall(r'^mlfn_batch_requests_bucket\{le="([^"]+)"\} (\S+)$', metrics_text, re.M)
    return {le: float(count) for le, count in found}


def _concurrently(fn: Callable[[int], Any], count: int = CONCURRENCY) -> list[Any]:
    barrier = threading.Barrier(count)

    def task(i: int) -> Any:
        barrier.wait(10)
        return fn(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(task, range(count)))


def _posted(url: str, request: Callable[[httpx.Client, int], httpx.Response]) -> list[httpx.Response]:
    """`request(client, i)` for i in range(CONCURRENCY), each on its own connection, all at once."""
    clients = [httpx.Client(base_url=url, timeout=30) for _ in range(CONCURRENCY)]
    try:
        return _concurrently(lambda i: request(clients[i], i))
    finally:
        for client in clients:
            client.close()


def _rows(i: int) -> list[list[float]]:
    """Request i's rows: 1 to 3 rows of distinct values, so a mix-up between requests shows."""
    return [[i * 10.0 + r + c / 10 for c in range(4)] for r in range(1 + i % 3)]


def test_concurrent_requests_batch_and_get_their_own_answers(perf_server: Callable[[str], Any]) -> None:
    server = perf_server("doubler")
    clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(CONCURRENCY)]
    try:
        before = _batch_counts(clients[0].get("/metrics").text)
        for _ in range(3):
            replies = _concurrently(lambda i: clients[i].post("/v1/models/doubler:predict",
                                                              json={"instances": _rows(i)}))
            for i, reply in enumerate(replies):
                assert reply.status_code == 200, reply.text
                assert np.allclose(reply.json()["predictions"], np.array(_rows(i)) * 2)
        after = _batch_counts(clients[0].get("/metrics").text)
    finally:
        for client in clients:
            client.close()
    single = after.get("1.0", 0) - before.get("1.0", 0)
    total = after["+Inf"] - before.get("+Inf", 0)
    assert total < 3 * CONCURRENCY, "every request ran alone: no batch formed"
    assert total - single >= 1, "no model run served more than one request"


def test_zipmap_outputs_split_per_request(perf_server: Callable[[str], Any], perf_models: dict[str, Path]
                                                 ) -> None:
    """iris (skl2onnx, ZipMap probabilities as a list of dicts) over SageMaker /invocations, concurrently."""
    server = perf_server("iris")
    direct = InferenceService.from_dir(perf_models["iris"])
    rng = np.random.default_rng(7)
    features = [rng.uniform(0.5, 7.5, size=(1 + i % 2, 4)).astype(np.float32) for i in range(CONCURRENCY)]
    replies = _posted(server.url, lambda client, i: client.post("/invocations",
                                                               json={"instances": features[i].tolist()}))
    assert batching_enabled(direct)
    for i, reply in enumerate(replies):
        assert reply.status_code == 200, reply.text
        body = json.dumps({"instances": features[i].tolist()}).encode()
        expected = json.loads(direct.invocations(body, {"content-type": "application/json"}).body)["predictions"]
        got = reply.json()["predictions"]
        assert [p["output_label"] for p in got] == [p["output_label"] for p in expected]
        for mine, theirs in zip(got, expected, strict=True):
            assert mine["output_probability"] == pytest.approx(theirs["output_probability"], abs=1e-6)


def test_bad_input_in_a_batch_gets_its_own_error(perf_server: Callable[[str], Any]) -> None:
    server = perf_server("doubler")
    bad = {3, 11}

    def call(client: httpx.Client, i: int) -> httpx.Response:
        rows = [[1.0, 2.0, 3.0]] if i in bad else _rows(i)  # three columns where the model takes four
        return client.post("/v1/models/doubler:predict", json={"instances": rows})

    replies = _posted(server.url, call)
    for i, reply in enumerate(replies):
        if i in bad:
            assert reply.status_code == 400
            assert "x" in reply.json()["error"]
        else:
            assert reply.status_code == 200, reply.text
            assert np.allclose(reply.json()["predictions"], np.array(_rows(i)) * 2)


def test_model_error_in_a_batch_fails_only_its_request(perf_server: Callable[[str], Any]) -> None:
    """An index out of range fails inside onnxruntime; the batch is rerun member by member."""
    server = perf_server("gather")
    bad = {5}

    def call(client: httpx.Client, i: int) -> httpx.Response:
        idx = 9 if i in bad else i % 4
        return client.post("/v1/models/gather:predict", json={"inputs": {
            "x": [[i + 0.0, i + 0.25, i + 0.5, i + 0.75]], "idx": [[idx]]}})

    replies = _posted(server.url, call)
    for i, reply in enumerate(replies):
        if i in bad:
            assert reply.status_code in (400, 500), reply.text
            assert "error" in reply.json()
        else:
            assert reply.status_code == 200, reply.text
            assert reply.json()["predictions"] == [[i + (i % 4) / 4]]


@pytest.mark.parametrize("name", ["fixed", "unbatched"])
def test_no_batching_without_batch_dimension_or_when_off(perf_server: Callable[[str], Any], name: str) -> None:
    server = perf_server(name)
    rows = [[1.0, 2.0, 3.0]] if name == "fixed" else [[1.0, 2.0, 3.0, 4.0]]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        replies = _concurrently(lambda i: client.post(f"/v1/models/{name}:predict", json={"instances": rows}), 8)
        assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
        assert _batch_counts(client.get("/metrics").text) == {}
    assert "dynamic batching" not in server.log


def test_install_only_where_batching_applies(perf_models: dict[str, Path]) -> None:
    assert batching_enabled(InferenceService.from_dir(perf_models["doubler"]))
    assert not batching_enabled(InferenceService.from_dir(perf_models["fixed"]))
    assert not batching_enabled(InferenceService.from_dir(perf_models["unbatched"]))
    assert install(InferenceService.from_dir(perf_models["fixed"])) is None


# ---------------------------------------------------------------------------- the Batcher itself


def _threaded_runs(batcher: Batcher, feeds: list[dict[str, np.ndarray]], names: list[str]) -> list[Any]:
    def one(i: int) -> Any:
        try:
            return batcher.call(tickets[i], batcher.run, feeds[i], names)
        except Exception as exc:  # returned for the assertions
            return exc

    tickets = [batcher.expect() for _ in feeds]
    return _concurrently(one, len(feeds))


def test_batcher_stacks_by_shape_signature(perf_models: dict[str, Path]) -> None:
    service = InferenceService.from_dir(perf_models["doubler"])
    model = service.model
    batcher = Batcher(model.run_checked, max_rows=8, max_wait_s=0.2)
    feeds = [{"x": np.full((1 + i % 2, 4), i, np.float32)} for i in range(12)]
    results = _threaded_runs(batcher, feeds, model.all_outputs)
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], feeds[i]["x"] * 2)
    assert batcher.requests == 12
    assert batcher.batches < 12
    assert all(1 + i % 2 == len(r["y"]) for i, r in enumerate(results))


def test_batcher_never_exceeds_max_rows_and_keeps_shapes_apart() -> None:
    seen: list[tuple[int, ...]] = []

    def run(feeds: dict[str, np.ndarray], names: Any) -> dict[str, Any]:
        seen.append(feeds["x"].shape)
        return {"y": feeds["x"] + 1, "labels": [f"r{v}" for v in feeds["x"][:, 0]]}

    batcher = Batcher(run, max_rows=4, max_wait_s=0.2)
    feeds = [{"x": np.full((1, 2 + i % 2), i, np.float32)} for i in range(10)]
    results = _threaded_runs(batcher, feeds, ["y", "labels"])
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], feeds[i]["x"] + 1)
        assert result["labels"] == [f"r{float(i)}"]
    assert all(shape[0] <= 4 for shape in seen)
    assert len(seen) < 10


def test_batch_failure_reruns_members_one_by_one() -> None:
    def run(feeds: dict[str, np.ndarray], names: Any) -> dict[str, Any]:
        if (feeds["x"] < 0).any():
            raise ModelError("negative input")
        return {"y": feeds["x"] * 3}

    batcher = Batcher(run, max_rows=16, max_wait_s=0.2)
    feeds = [{"x": np.full((1, 2), -1.0 if i == 4 else i, np.float32)} for i in range(8)]
    results = _threaded_runs(batcher, feeds, ["y"])
    for i, result in enumerate(results):
        if i == 4:
            assert isinstance(result, ModelError)
        else:
            np.testing.assert_array_equal(result["y"], feeds[i]["x"] * 3)


def test_wait_is_bounded_when_an_announced_request_never_comes() -> None:
    batcher = Batcher(lambda feeds, names: {"y": feeds["x"]}, max_rows=8, max_wait_s=0.05)
    ticket = batcher.expect()
    batcher.expect()  # announced, never arrives: the leader must give up after max_wait
    done = threading.Event()
    result: list[Any] = []

    def one() -> None:
        result.append(batcher.call(ticket, batcher.run, {"x": np.ones((1, 2), np.float32)}, ["y"]))
        done.set()

    threading.Thread(target=one, daemon=True).start()
    assert done.wait(10), "the leader waited past max_wait for a request that never came"
    np.testing.assert_array_equal(result[0]["y"], np.ones((1, 2), np.float32))


def test_split_refuses_outputs_without_the_batch_rows() -> None:
    parts = split({"y": np.arange(6).reshape(3, 2), "l": ["a", "b", "c"]}, [1, 2])
    assert parts[1]["l"] == ["b", "c"]
    np.testing.assert_array_equal(parts[0]["y"], [[0, 1]])
    with pytest.raises(Exception, match="total"):
        split({"total": np.float32(3.0)}, [1, 2])
    assert signature({"x": np.ones((2, 3), np.float32)}, ["y"]) is not None
    assert signature({"x": np.ones((2, 3), np.float32), "z": np.ones((1, 3), np.float32)}, ["y"]) is None


def test_install_attaches_the_batcher_to_the_service_and_leaves_the_model_alone(perf_models: dict[str, Path]) -> None:
    service = InferenceService.from_dir(perf_models["doubler"])
    batcher = install(service)
    assert batcher is not None and service.batcher is batcher
    assert "run_checked" not in vars(service.model) and "batcher" not in vars(service.model)
    answer = service.v1_predict("doubler", b'{"instances": [[1, 2, 3, 4]]}', {"content-type": "application/json"})
    assert answer.status == 200 and batcher.batches == 1
