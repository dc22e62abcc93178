"""A minimal Lambda Runtime API on 127.0.0.1 for the image smoke test: hands out one event and records the answer.

The project's full emulator lives in mlfn.cli.local; this stub keeps the image test independent of it.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
REQUEST_ID = "11111111-2222-3333-4444-555555555555"


class RuntimeApiStub:
    def __init__(self, event: dict[str, Any]) -> None:
        self.event = json.dumps(event).encode()
        self.handed_out = False
        self.answer: dict[str, Any] | None = None
        self.answered = threading.Event()
        self.closing = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404, b"{}")
                if stub.handed_out:  # later long polls wait until the test ends
                    stub.closing.wait(60)
                    return self._reply(500, b"{}")
                stub.handed_out = True
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", REQUEST_ID)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:iris")
                self.send_header("Content-Length", str(len(stub.event)))
                self.end_headers()
                self.wfile.write(stub.event)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind = self.path.rsplit("/", 1)[-1]  # response, error (invocation or init)
                stub.answer = {"kind": kind, "path": self.path, "body": json.loads(body or b"null")}
                stub.answered.set()
                self._reply(202, b"{}")

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RuntimeApiStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
