"""The server's HTTP/1.1 layer over raw sockets: keep-alive, pipelining, chunked and 100-continue bodies,
body limits, HTTP/1.0, HEAD, malformed requests, and the routes it hands to FastAPI.

Each test runs against the default lean server and, with `MLFN_HTTP=uvicorn`, against uvicorn: both must
behave alike (the suites in tests/runtime_http run against the default one).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Server, doubler_graph, write_model

LIMIT = 4096


@pytest.fixture(scope="module", params=["lean", "uvicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    model = write_model(tmp_path_factory.mktemp("http11") / "doubler", doubler_graph(),
                        f'name = "doubler"\n[server]\nmax_body_bytes = {LIMIT}\n')
    saved = os.environ.get("MLFN_HTTP")
    os.environ["MLFN_HTTP"] = request.param
    try:
        started = Server(Path(model))
    finally:
        if saved is None:
            os.environ.pop("MLFN_HTTP", None)
        else:
            os.environ["MLFN_HTTP"] = saved
    started.wait_ready()
    started.kind = request.param
    yield started
    assert started.stop() == 0, started.log


def connect(server: Any) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Reader:
    """Reads HTTP/1.1 responses one by one off a socket (Content-Length or chunked bodies)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError("closed")
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                raise ConnectionError("closed")
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        status = int(self._line().split()[1])
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if head_only or status in (100, 204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._line(), 16):
                body += self._exactly(size)
                self._line()
            self._line()
            return status, headers, body
        return status, headers, self._exactly(int(headers.get("content-length", "0")))

    def closed(self) -> bool:
        try:
            return not self.buffer and not self._fill()
        except (ConnectionResetError, TimeoutError):
            return True


def predict(rows: list[list[float]], extra: str = "") -> bytes:
    body = json.dumps({"instances": rows}).encode()
    return (f"POST /v1/models/doubler:predict HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n{extra}"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


def test_keep_alive_and_pipelined_requests_answered_in_order(server: Any) -> None:
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(predict([[1, 2, 3, 4]]) + predict([[5, 6, 7, 8]]) + b"GET /ping HTTP/1.1\r\nhost: t\r\n\r\n")
        first, second, ping = reader.response(), reader.response(), reader.response()
        assert json.loads(first[2]) == {"predictions": [[2, 4, 6, 8]]}
        assert json.loads(second[2]) == {"predictions": [[10, 12, 14, 16]]}
        assert ping[0] == 200
        sock.sendall(predict([[0, 0, 0, 1]]))  # still open after all three
        assert json.loads(reader.response()[2]) == {"predictions": [[0, 0, 0, 2]]}
        assert first[1]["x-request-id"] != second[1]["x-request-id"]


def test_chunked_request_body(server: Any) -> None:
    body = json.dumps({"instances": [[1, 1, 1, 1], [2, 2, 2, 2]]}).encode()
    pieces = [body[:7], body[7:20], body[20:]]
    chunked = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(b"POST /v1/models/doubler:predict HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
                     b"transfer-encoding: chunked\r\n\r\n" + chunked)
        status, _, answer = Reader(sock).response()
    assert status == 200
    assert json.loads(answer) == {"predictions": [[2, 2, 2, 2], [4, 4, 4, 4]]}


def test_chunked_body_over_the_limit_is_413_and_closes(server: Any) -> None:
    chunk = b"[" + b"1," * 1500 + b"1]"
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(b"POST /v1/models/doubler:predict HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
                     b"transfer-encoding: chunked\r\n\r\n" + (b"%x\r\n%b\r\n" % (len(chunk), chunk)) * 2)
        status, headers, body = reader.response()
        assert status == 413
        assert json.loads(body)["limit"] == LIMIT
        assert headers["connection"] == "close"
        assert reader.closed()


def test_expect_100_continue(server: Any) -> None:
    body = json.dumps({"instances": [[1, 2, 3, 4]]}).encode()
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(b"POST /v1/models/doubler:predict HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
                     b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n" % len(body))
        assert reader.response()[0] == 100
        sock.sendall(body)
        status, _, answer = reader.response()
    assert status == 200
    assert json.loads(answer) == {"predictions": [[2, 4, 6, 8]]}


def test_expect_100_continue_over_the_limit_is_refused_at_once(server: Any) -> None:
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(b"POST /v1/models/doubler:predict HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
                     b"expect: 100-continue\r\ncontent-length: 100000\r\n\r\n")
        status, _, body = reader.response()
        assert status == 413
        assert "Content-Length 100000" in json.loads(body)["received"]


def test_http_10_closes_unless_keep_alive(server: Any) -> None:
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /v2/health/live HTTP/1.0\r\n\r\n")
        status, _, body = reader.response()
        assert (status, json.loads(body)) == (200, {"live": True})
        assert reader.closed()
    if server.kind == "uvicorn":
        return  # uvicorn closes HTTP/1.0 connections even when asked to keep them
    with connect(server) as sock:
        reader = Reader(sock)
        for _ in range(2):
            sock.sendall(b"GET /v2/health/live HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
            assert reader.response()[0] == 200


def test_head_has_headers_only(server: Any) -> None:
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(b"HEAD /v2/health/ready HTTP/1.1\r\nhost: t\r\n\r\n"
                     b"GET /v2/health/live HTTP/1.1\r\nhost: t\r\n\r\n")
        status, headers, _ = reader.response(head_only=True)
        assert status == 200 and int(headers["content-length"]) > 0
        assert reader.response()[2] == b'{"live":true}'  # nothing of HEAD's body came in between


def test_malformed_request_is_400_and_closes(server: Any) -> None:
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(b"NOT AN HTTP REQUEST\r\n\x00\x01\r\n\r\n")
        assert reader.response()[0] == 400
        assert reader.closed()


def test_fastapi_routes_are_served(server: Any) -> None:
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nhost: t\r\n\r\nGET /nowhere HTTP/1.1\r\nhost: t\r\n\r\n")
        status, headers, body = reader.response()
        assert status == 200 and "/v1/models/{name}:predict" in json.loads(body)["paths"]
        assert "x-request-id" in headers
        status, _, body = reader.response()
        assert status == 404 and "no route" in json.loads(body)["error"]


def test_model_calls_honour_connection_close_and_http_10(server: Any) -> None:
    """Model calls answered on the quick path (after the first few, once the core knows the model is quick)
    frame their responses as every other: `connection: close` is echoed and closes, HTTP/1.0 closes unless
    asked to keep alive."""
    for _ in range(4):
        with connect(server) as sock:
            reader = Reader(sock)
            sock.sendall(predict([[1, 2, 3, 4]], "connection: close\r\n"))
            status, headers, body = reader.response()
            assert (status, json.loads(body)) == (200, {"predictions": [[2, 4, 6, 8]]})
            assert headers["connection"] == "close"
            assert reader.closed()
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(predict([[1, 1, 1, 1]]).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        status, _, body = reader.response()
        assert (status, json.loads(body)) == (200, {"predictions": [[2, 2, 2, 2]]})
        assert reader.closed()
