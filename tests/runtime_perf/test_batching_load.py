"""Dynamic batching under a benchmark's load: no request is ever left unanswered.

A slow-ish batchable model (a chain of matrix products) behind the real server (`python -m mlfn.runtime.server`,
mlfn's HTTP/1.1 server, batching with the defaults a user gets: 32 rows, 5 ms) is driven the way the benchmark
drives it with wrk: 32 keep-alive connections, clients that hang up with a request in flight, one connection
alone, then 64 connections with requests of mixed row counts. Every request must get its own answer within a
bounded time; a stall (a lost wake-up, a leader nobody hands over to, a pool too small for a batch) fails here.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlfn.runtime.asgi import CONCURRENT_HOLD_S, ServingCore
from mlfn.runtime.batching import Batcher
from mlfn.runtime.service import InferenceService

from .conftest import Server, write_model

WIDTH = 256
# y = x @ I @ I ...: the answer is the request's own rows, after real work. "quick" runs well under a millisecond
# (lone requests go inline, concurrent ones to the pool); "slow" takes milliseconds a row (always on the pool).
MODELS = {"quick": 16, "slow": 160}
REQUEST_TIMEOUT_S = 30.0
TOML = '[server]\nintra_op_threads = 1\n[batching]\nmax_batch_size = 32\nmax_wait_ms = 5\n'


def identity_chain(layers: int) -> onnx.GraphProto:
    """y = x @ I^layers for x float32[batch, WIDTH]: the identity, at the cost of `layers` matrix products."""
    eye = numpy_helper.from_array(np.eye(WIDTH, dtype=np.float32), "eye")
    nodes, previous = [], "x"
    for i in range(layers):
        out = "y" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [previous, "eye"], [out]))
        previous = out
    return helper.make_graph(
        nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])], [eye])


@pytest.fixture(scope="module", params=sorted(MODELS))
def slow_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    name = request.param
    model_dir = write_model(tmp_path_factory.mktemp(name) / "model", identity_chain(MODELS[name]),
                            f'name = "chain"\n{TOML}')
    server = Server(model_dir)
    try:
        server.wait_ready()
        yield server
    finally:
        code = server.stop()
    assert code == 0, server.log


def _rows(tag: int, count: int) -> list[list[float]]:
    """`count` rows that only this request sends (its tag in the first column), so a mix-up shows."""
    return [[float(tag), float(r)] + [0.5] * (WIDTH - 2) for r in range(count)]


def _client(port: int, tag: int, requests: int, rows: Callable[[int], int]) -> int:
    """`requests` POSTs, one after another on one keep-alive connection; how many got their own answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    answered = 0
    try:
        for n in range(requests):
            sent = _rows(tag * 1000 + n, rows(n))
            conn.request("POST", "/v1/models/chain:predict", json.dumps({"instances": sent}),
                         {"content-type": "application/json"})
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, body[:300]
            got = json.loads(body)["predictions"]
            assert np.allclose(np.asarray(got, dtype=np.float32), np.asarray(sent, dtype=np.float32)), tag
            answered += 1
    finally:
        conn.close()
    return answered


def _load(port: int, clients: int, requests: int, rows: Callable[[int], int] = lambda n: 1) -> None:
    """`clients` connections at once, each sending `requests` requests; all must be answered in time."""
    barrier = threading.Barrier(clients)

    def run(tag: int) -> int:
        barrier.wait(10)
        return _client(port, tag, requests, rows)

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(run, tag) for tag in range(clients)]
        answered = [f.result(timeout=REQUEST_TIMEOUT_S * requests + 10) for f in futures]
    assert answered == [requests] * clients


def _hang_up_mid_request(port: int, clients: int) -> None:
    """What wrk does when its time is up: connections close with their request still being answered."""
    body = json.dumps({"instances": _rows(999, 1)}).encode()
    head = (f"POST /v1/models/chain:predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    socks: list[socket.socket] = []
    try:
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(head + body)
            socks.append(sock)
    finally:
        for sock in socks:
            sock.close()


def test_every_request_is_answered_through_the_benchmark_sequence(slow_server: Server) -> None:
    port = slow_server.port
    _load(port, clients=32, requests=4)  # warm-up at concurrency 32
    _hang_up_mid_request(port, 32)
    _load(port, clients=1, requests=10)  # one connection alone: batches of one, no waiting
    _load(port, clients=32, requests=4)
    _hang_up_mid_request(port, 32)
    _load(port, clients=64, requests=3, rows=lambda n: 1 + n % 3)  # more connections than batch rows
    _load(port, clients=32, requests=3)


def test_the_server_still_answers_after_clients_vanish(slow_server: Server) -> None:
    """Many in-flight requests whose clients are gone must not keep the next client waiting for good."""
    for _ in range(3):
        _hang_up_mid_request(slow_server.port, 48)
        _load(slow_server.port, clients=1, requests=2)


def test_batches_formed_under_load(slow_server: Server) -> None:
    """The load above really ran as batches (so the test exercised the leader/follower hand-offs)."""
    conn = http.client.HTTPConnection("127.0.0.1", slow_server.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    counts: dict[str, Any] = {}
    for line in text.splitlines():
        if line.startswith("mlfn_batch_requests_bucket"):
            le = line.split('le="')[1].split('"')[0]
            counts[le] = float(line.rsplit(" ", 1)[1])
    assert counts, text[:500]
    assert counts["+Inf"] > counts.get("1.0", 0.0), counts  # some runs served more than one request



def test_a_lone_request_never_runs_inline_while_a_batch_is_running(perf_models: dict[str, Path]) -> None:
    """The lone-request shortcut (run inline on the event loop) must not be taken while the batcher is busy,
    even when no call is counted on the pool (an await that was cancelled): the loop would block as a
    follower until the batch ends. Here a pool thread leads a batch held open by a gate; a quick request
    arriving meanwhile must leave the loop free and be answered once the gate opens."""
    service = InferenceService.from_dir(perf_models["doubler"])
    model = service.model
    plain = model.run_checked
    gate = threading.Event()
    holding = [False]

    def gated(feeds: dict[str, np.ndarray], names: Any) -> dict[str, Any]:
        if holding[0]:
            gate.wait(5)  # bounded: a failing test ends, it does not hang
        return plain(feeds, names)

    batcher = Batcher(gated, max_rows=32, max_wait_s=0.005)
    service.batcher = batcher  # what batching.install does
    with ThreadPoolExecutor(4) as pool:
        core = ServingCore(service, executor=pool)

        async def post(x: float) -> tuple[int, Any]:
            body = json.dumps({"instances": [[x] * 4]}).encode()
            scope = {"type": "http", "method": "POST", "path": "/v1/models/doubler:predict", "root_path": "",
                     "query_string": b"", "headers": [(b"content-type", b"application/json")]}
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await core(scope, receive, send)
            return sent[0]["status"], json.loads(sent[1]["body"])

        async def scenario() -> None:
            for i in range(30):  # quick calls: the core learns to run lone requests inline
                assert (await post(i))[0] == 200
                await asyncio.sleep(0)  # one request per turn of the loop: lone, not concurrent
            await asyncio.sleep(CONCURRENT_HOLD_S * 2)
            holding[0] = True
            leader = pool.submit(batcher.run, {"x": np.ones((1, 4), np.float32)}, model.all_outputs)
            while batcher.idle:
                await asyncio.sleep(0.001)
            request = asyncio.ensure_future(post(7.0))
            await asyncio.sleep(0.05)  # returns only if the request did not block the loop
            assert not gate.is_set() and not request.done()
            gate.set()
            status, answer = await asyncio.wait_for(request, 10)
            assert status == 200 and answer["predictions"] == [[14.0] * 4]
            np.testing.assert_array_equal(leader.result(10)["y"], np.full((1, 4), 2.0, np.float32))

        safety = threading.Timer(5, gate.set)
        safety.start()
        try:
            asyncio.run(scenario())
        finally:
            safety.cancel()
            gate.set()


def test_a_request_cancelled_before_its_thread_starts_is_not_waited_for(perf_models: dict[str, Path]) -> None:
    """A request handed to the pool is announced to the batcher, so a leader waits (up to max_wait) for it.
    If the client goes away while the request still queues for a pool thread, its call never starts; the
    announcement must be withdrawn, or every later batch waits the full max_wait for a request that never
    comes. Here the only pool thread is held by a gate while a request queues behind it and is cancelled;
    afterwards a lone run must answer well inside max_wait (2 s)."""
    service = InferenceService.from_dir(perf_models["doubler"])
    model = service.model
    batcher = Batcher(model.run_checked, max_rows=32, max_wait_s=2.0)
    service.batcher = batcher  # what batching.install does
    gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        core = ServingCore(service, executor=pool)
        pool.submit(gate.wait, 10)  # the only thread is busy: the request below queues behind it

        async def post() -> None:
            body = json.dumps({"instances": [[1.0] * 4]}).encode()
            scope = {"type": "http", "method": "POST", "path": "/v1/models/doubler:predict", "root_path": "",
                     "query_string": b"", "headers": [(b"content-type", b"application/json")]}

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                pass

            await core(scope, receive, send)

        async def scenario() -> None:
            request = asyncio.ensure_future(post())
            await asyncio.sleep(0.05)
            assert not request.done()  # queued behind the gate
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await request

        try:
            asyncio.run(scenario())
        finally:
            gate.set()
        started = time.perf_counter()
        answer = pool.submit(batcher.run, {"x": np.full((1, 4), 3.0, np.float32)}, model.all_outputs).result(10)
        took = time.perf_counter() - started
    np.testing.assert_array_equal(answer["y"], np.full((1, 4), 6.0, np.float32))
    assert took < 1.0, f"a lone run waited {took:.2f} s for a cancelled request"
