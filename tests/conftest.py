"""Fixtures shared by every test folder. Each folder (tests/runtime, tests/infra, ...) keeps its own conftest."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def functions_dir() -> Path:
    return FUNCTIONS


@pytest.fixture
def aws_json_server() -> Iterator[Callable[[Callable[[str, dict[str, Any]], dict[str, Any]]], str]]:
    """Start loopback servers speaking AWS's JSON 1.1 protocol (POST, `X-Amz-Target`) for services moto lacks:
    `serve(answer)` returns the endpoint URL; `answer(target, body)` gives the reply's JSON. Stopped at teardown."""
    servers: list[ThreadingHTTPServer] = []

    def serve(answer: Callable[[str, dict[str, Any]], dict[str, Any]]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                assert self.headers["Content-Type"] == "application/x-amz-json-1.1"
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                data = json.dumps(answer(self.headers["X-Amz-Target"], body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()
