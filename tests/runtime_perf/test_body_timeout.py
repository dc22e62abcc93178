"""Half-sent request bodies (issue 19): a body that stops arriving gets 408 and a close after the body timeout,
and a chunk whose declared size passes the body limit is refused at once, on the lean server and on uvicorn.

The servers run with `MLFN_BODY_TIMEOUT_S=1` and `MLFN_KEEP_ALIVE_S=2.5`, so each stalled request is answered
within seconds; the raw sockets time out after 10 s, so a server that never answers fails the test instead of
hanging it.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlfn.runtime.server import parse_args

from .conftest import Server, doubler_graph, environment, write_model
from .test_http11 import Reader, connect

LIMIT = 4096
TIMEOUT_S = 1.0
KEEP_ALIVE_S = 2.5
PREDICT = (b"POST /v1/models/doubler:predict HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n")


@pytest.fixture(scope="module", params=["lean", "uvicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    model = write_model(tmp_path_factory.mktemp("timeouts") / "doubler", doubler_graph(),
                        f'name = "doubler"\n[server]\nmax_body_bytes = {LIMIT}\n')
    with environment(MLFN_HTTP=request.param, MLFN_BODY_TIMEOUT_S=str(TIMEOUT_S), MLFN_KEEP_ALIVE_S=str(KEEP_ALIVE_S)):
        started = Server(Path(model))
    started.wait_ready()
    started.kind = request.param
    yield started
    assert started.stop() == 0, started.log


def answer_to(sock: socket.socket, data: bytes) -> tuple[int | None, float]:
    """Send `data`, then wait: the status the server answers with (None: it closed without one) and the wait."""
    started = time.monotonic()
    sock.sendall(data)
    reader = Reader(sock)
    try:
        status, headers, body = reader.response()
    except ConnectionError:
        return None, time.monotonic() - started
    if status == 408:
        assert json.loads(body)["timeout_s"] == TIMEOUT_S
    assert headers.get("connection") == "close"
    assert reader.closed()
    return status, time.monotonic() - started


@pytest.mark.parametrize("stalled", [
    pytest.param(b"content-length: 100\r\n\r\n" + b'{"instances"', id="content-length-100-then-10-bytes"),
    pytest.param(b"transfer-encoding: chunked\r\n\r\n40\r\n" + b'{"instances"', id="partial-chunk"),
    pytest.param(b"transfer-encoding: chunked\r\n\r\n" + b'c\r\n{"instances"\r\n', id="no-last-chunk"),
])
def test_a_body_that_stops_arriving_gets_408_and_a_close(server: Any, stalled: bytes) -> None:
    with connect(server) as sock:
        status, waited = answer_to(sock, PREDICT + stalled)
    assert status == 408, server.log
    assert TIMEOUT_S * 0.9 <= waited < TIMEOUT_S + 5


def test_the_connection_serves_requests_whose_bodies_come_slowly_but_in_time(server: Any) -> None:
    body = json.dumps({"instances": [[1, 2, 3, 4]]}).encode()
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(PREDICT + b"content-length: %d\r\n\r\n" % len(body) + body[:5])
        time.sleep(TIMEOUT_S / 2)
        sock.sendall(body[5:])
        status, _, answer = reader.response()
        assert (status, json.loads(answer)) == (200, {"predictions": [[2, 4, 6, 8]]})
        time.sleep(TIMEOUT_S * 1.5)  # idle between requests: the keep-alive timeout applies, not the body's
        sock.sendall(PREDICT + b"content-length: %d\r\n\r\n" % len(body) + body)
        assert reader.response()[0] == 200


@pytest.mark.parametrize("size_line", [b"ffffffffffffffff", b"1001", b"0000000000000000000000000000000001001;x=y"])
def test_a_chunk_larger_than_the_body_limit_is_refused_at_once(server: Any, size_line: bytes) -> None:
    with connect(server) as sock:
        status, waited = answer_to(sock, PREDICT + b"transfer-encoding: chunked\r\n\r\n" + size_line + b"\r\n"
                                   + b'{"instances"')
    if server.kind == "uvicorn":  # uvicorn's parser keeps the chunk size to itself: the body timeout applies
        assert status == 408, server.log
        return
    assert status == 413, server.log
    assert waited < TIMEOUT_S / 2


def test_a_chunk_size_line_split_across_reads_is_still_read_whole(server: Any) -> None:
    if server.kind == "uvicorn":
        pytest.skip("uvicorn's parser keeps the chunk size to itself")
    with connect(server) as sock:
        sock.sendall(PREDICT + b"transfer-encoding: chunked\r\n\r\n10")
        time.sleep(0.2)
        status, waited = answer_to(sock, b"000\r\n" + b'{"instances"')
    assert status == 413 and waited < TIMEOUT_S / 2, server.log


def test_an_idle_connection_is_closed_after_the_keep_alive_setting(server: Any) -> None:
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /ping HTTP/1.1\r\nhost: t\r\n\r\n")
        assert reader.response()[0] == 200
        started = time.monotonic()
        assert reader.closed()
        waited = time.monotonic() - started
    assert round(KEEP_ALIVE_S) - 0.6 <= waited < KEEP_ALIVE_S + 5  # uvicorn counts whole seconds


def test_the_timeouts_are_settings_that_refuse_nonsense() -> None:
    with environment(MLFN_BODY_TIMEOUT_S="2.5", MLFN_KEEP_ALIVE_S="30"):
        args = parse_args(["serve"])
    assert (args.body_timeout, args.keep_alive) == (2.5, 30.0)
    assert parse_args(["serve", "--body-timeout", "0.5"]).body_timeout == 0.5
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SystemExit) as stopped:
            parse_args(["serve", "--body-timeout", bad])
        assert stopped.value.code == 2
