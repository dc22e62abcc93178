"""`mlfn.runtime.http11.Server` in-process with a small ASGI app: idle keep-alive connections are closed, a
graceful stop lets the request in progress finish, and an app that crashes gets a 500 (not a hang)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mlfn.runtime.http11 import Server

from .test_http11 import Reader


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    if scope["path"] == "/crash":
        raise RuntimeError("boom")
    if scope["path"] == "/slow":
        await asyncio.sleep(0.3)
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class QuickApp:
    """`app`, plus a `quick_reply` (the synchronous path mlfn's ServingCore offers) for POSTs under /quick."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app(scope, receive, send)

    def quick_reply(self, method: str, path: str, headers: list[tuple[bytes, bytes]],
                    body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        if method != "POST" or not path.startswith("/quick"):
            return None  # declined: served through the ASGI app
        if path == "/quick/crash":
            raise RuntimeError("boom")
        return 200, [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())], body


@pytest.fixture()
def running() -> Iterator[tuple[Server, int, asyncio.AbstractEventLoop]]:
    sock = socket.create_server(("127.0.0.1", 0))
    server = Server(QuickApp(), body_limit=lambda: 1024, keep_alive_s=0.3, graceful_s=5)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve([sock], lifespan=False)),
                              daemon=True)
    thread.start()
    time.sleep(0.2)
    yield server, sock.getsockname()[1], loop
    loop.call_soon_threadsafe(server.shutdown)
    thread.join(10)
    sock.close()


def get(sock: socket.socket, path: str) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nhost: t\r\n\r\n".encode())


def test_idle_keep_alive_connection_is_closed(running: tuple[Server, int, Any]) -> None:
    _, port, _ = running
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = Reader(sock)
        get(sock, "/a")
        assert reader.response()[2] == b"/a"
        time.sleep(0.1)
        get(sock, "/b")  # activity keeps it open past the first timeout
        assert reader.response()[2] == b"/b"
        started = time.monotonic()
        assert reader.closed()
        assert time.monotonic() - started < 5


def test_graceful_stop_finishes_the_request_in_progress(running: tuple[Server, int, Any]) -> None:
    server, port, loop = running
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = Reader(sock)
        get(sock, "/slow")
        time.sleep(0.1)
        loop.call_soon_threadsafe(server.shutdown)
        assert reader.response()[2] == b"/slow"
        assert reader.closed()


def test_a_crashing_app_gets_500_and_the_connection_closes(running: tuple[Server, int, Any]) -> None:
    _, port, _ = running
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = Reader(sock)
        get(sock, "/crash")
        assert reader.response()[0] == 500
        assert reader.closed()


def test_a_huge_request_head_is_431_and_closes(running: tuple[Server, int, Any]) -> None:
    _, port, _ = running
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /a HTTP/1.1\r\nhost: t\r\n" + b"x-filler: " + b"y" * 70_000 + b"\r\n\r\n")
        assert reader.response()[0] == 431
        assert reader.closed()


def post(sock: socket.socket, path: str, body: bytes) -> None:
    sock.sendall(f"POST {path} HTTP/1.1\r\nhost: t\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)


def test_quick_replies_keep_the_connection_and_the_order(running: tuple[Server, int, Any]) -> None:
    """Quick answers and ASGI answers interleave on one keep-alive connection in request order."""
    _, port, _ = running
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = Reader(sock)
        post(sock, "/quick/a", b"one")
        post(sock, "/asgi", b"two")  # declined by quick_reply: the ASGI app answers with the path
        post(sock, "/quick/b", b"three")
        assert [reader.response()[2] for _ in range(3)] == [b"one", b"/asgi", b"three"]


def test_a_crashing_quick_reply_gets_500_and_the_server_goes_on(running: tuple[Server, int, Any]) -> None:
    _, port, _ = running
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = Reader(sock)
        post(sock, "/quick/crash", b"x")
        status, _, body = reader.response()
        assert status == 500 and b"internal error" in body
        assert reader.closed()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        post(sock, "/quick/ok", b"still serving")
        assert Reader(sock).response()[2] == b"still serving"
