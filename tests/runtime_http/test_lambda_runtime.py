"""The image's Lambda command for real: `python -m awslambdaric mlfn.runtime.lambda_handler.handler`.

The Lambda Runtime API that awslambdaric polls is served here by a small HTTP server on 127.0.0.1 (AWS's
Runtime Interface Emulator is not installable from the package registries): it hands out the fixture
events one by one, as Lambda does, and records what the function posts back.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import FUNCTIONS

EVENTS = Path(__file__).parent / "events"
PREFIX = "/2018-06-01/runtime"


class RuntimeApi(ThreadingHTTPServer):
    """Serves `invocation/next` from a queue of events and keeps every response and error posted."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RuntimeApiHandler)
        self.events: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.posted: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self.stopping = threading.Event()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class RuntimeApiHandler(BaseHTTPRequestHandler):
    server: RuntimeApi

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path != f"{PREFIX}/invocation/next":
            self.send_error(404)
            return
        while not self.server.stopping.is_set():
            try:
                request_id, body = self.server.events.get(timeout=0.1)
            except queue.Empty:
                continue
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                             "arn:aws:lambda:us-east-1:123456789012:function:mlfn-iris-dev")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-6564a0c1-0a1b2c3d4e5f60718293a4b5;Sampled=0")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"null")
        parts = self.path.removeprefix(PREFIX).strip("/").split("/")
        if parts[0] == "invocation":  # invocation/{id}/response | invocation/{id}/error
            self.server.posted.put((parts[2], parts[1], payload))
        else:  # init/error
            self.server.posted.put(("init-error", "", payload))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture()
def runtime_api() -> Iterator[RuntimeApi]:
    api = RuntimeApi()
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.stopping.set()
        api.shutdown()
        api.server_close()


def start_function(api: RuntimeApi, model_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": api.address, "MLFN_MODEL_DIR": str(model_dir),
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "AWS_LAMBDA_FUNCTION_NAME": "mlfn-iris-dev",
           "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "awslambdaric", "mlfn.runtime.lambda_handler.handler"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_the_runtime_interface_client_serves_function_url_events(runtime_api: RuntimeApi) -> None:
    predict = (EVENTS / "function_url_v1_predict.json").read_bytes()
    runtime_api.events.put(("req-1", predict))
    runtime_api.events.put(("req-2", predict))
    proc = start_function(runtime_api, FUNCTIONS / "iris")
    try:
        first = runtime_api.posted.get(timeout=60)
        second = runtime_api.posted.get(timeout=60)
    finally:
        proc.kill()
        output = proc.communicate(timeout=10)[0]
    for (kind, request_id, response), expected_id in ((first, "req-1"), (second, "req-2")):
        assert (kind, request_id) == ("response", expected_id), (kind, response, output)
        assert response["statusCode"] == 200
        assert response["headers"]["x-request-id"] == expected_id
        assert [p["output_label"] for p in json.loads(response["body"])["predictions"]] == ["setosa", "virginica"]
    emf = [json.loads(line) for line in output.splitlines() if '"_aws"' in line]
    assert [line["ColdStart"] for line in emf] == [1, 0], output
    assert emf[0]["InitDuration"] > 0 and emf[0]["LambdaRequestId"] == "req-1"


def test_a_broken_model_is_reported_as_an_init_error(runtime_api: RuntimeApi, tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    proc = start_function(runtime_api, tmp_path)
    try:
        kind, _, payload = runtime_api.posted.get(timeout=60)
        proc.wait(30)
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert kind == "init-error"
    assert payload["errorType"].endswith("SpecError")
    assert "model.onnx: expected a valid ONNX model" in payload["errorMessage"]
