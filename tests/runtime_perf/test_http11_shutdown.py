"""Stopping `mlfn.runtime.http11.Server` with requests still running whose clients have gone (what a load test
leaves behind): the event loop's end cancels them quietly, the app's cleanup runs, nothing is logged as a crash."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import pytest

from mlfn.runtime.http11 import Server


def test_stop_with_unanswered_requests_cancels_them_quietly(caplog: pytest.LogCaptureFixture) -> None:
    started = threading.Event()
    cleaned: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            started.set()
            await asyncio.get_running_loop().create_future()  # like a model run on the pool that is not back yet
        finally:
            cleaned.append(scope["path"])

    sock = socket.create_server(("127.0.0.1", 0))
    server = Server(app, body_limit=lambda: 1024, keep_alive_s=5, graceful_s=5)
    runner = asyncio.Runner()
    thread = threading.Thread(target=lambda: runner.run(server.serve([sock], lifespan=False)), daemon=True)
    caplog.set_level(logging.DEBUG, logger="mlfn.runtime.http")
    thread.start()
    try:
        with socket.create_connection(sock.getsockname()[:2], timeout=10) as client:
            client.sendall(b"GET /pending HTTP/1.1\r\nhost: t\r\n\r\n")
            assert started.wait(10)
        deadline = time.monotonic() + 10
        while server.connections and time.monotonic() < deadline:  # the client is gone; its request still runs
            time.sleep(0.02)
        runner.get_loop().call_soon_threadsafe(server.shutdown)
        thread.join(10)
        assert not thread.is_alive()
        runner.close()  # cancels what is still running, as `asyncio.Runner` does when the server process exits
    finally:
        sock.close()
    assert cleaned == ["/pending"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
