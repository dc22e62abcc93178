"""Bad requests get a JSON 4xx naming the problem; failures get a 500 with a request id; the server goes on."""

from __future__ import annotations

import gzip
import logging
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from .conftest import FUNCTIONS, Server, app_in_thread

X1 = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
X3 = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": list(range(12))}]}


def test_body_over_the_limit_by_content_length_is_413(doubler: httpx.Client) -> None:
    response = doubler.post("/v2/models/doubler/infer", content=b"x" * 5000,
                            headers={"content-type": "application/json"})
    assert response.status_code == 413
    body = response.json()
    assert "4096" in body["error"] and body["limit"] == 4096
    assert response.headers["connection"] == "close"
    assert doubler.get("/ping").status_code == 200


def test_chunked_body_over_the_limit_is_413(doubler: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    response = doubler.post("/invocations", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers  # really sent chunked
    assert response.status_code == 413
    assert response.json()["limit"] == 4096


def test_a_small_gzip_body_that_inflates_past_the_limit_is_413(doubler: httpx.Client) -> None:
    bomb = gzip.compress(b" " * 100_000)
    assert len(bomb) < 4096
    response = doubler.post("/invocations", content=bomb,
                            headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert response.status_code == 413 and "decompressed" in response.json()["received"]
    response = doubler.post("/invocations", content=b"{}", headers={"content-encoding": "br"})
    assert response.status_code == 415 and "br" in response.json()["error"]


def test_malformed_json_is_400_naming_the_problem(doubler: httpx.Client) -> None:
    response = doubler.post("/v2/models/doubler/infer", content=b'{"inputs": [',
                            headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in response.json()["error"] or "json" in response.json()["error"]


def test_wrong_content_type_is_415(doubler: httpx.Client) -> None:
    response = doubler.post("/v2/models/doubler/infer", content=b"1,2,3,4", headers={"content-type": "text/csv"})
    assert response.status_code == 415 and "text/csv" in response.json()["error"]


def test_unknown_route_is_404_json_and_wrong_method_is_405_json(doubler: httpx.Client) -> None:
    missing = doubler.post("/v3/predict", json={})
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
    assert missing.json()["error"] == "no route POST /v3/predict"
    for method, path in (("GET", "/invocations"), ("DELETE", "/ping"), ("GET", "/v2/models/doubler/infer"),
                         ("PUT", "/v1/models/doubler:predict")):
        response = doubler.request(method, path)
        assert response.status_code == 405, (method, path)
        assert method in response.json()["error"] and response.headers["allow"]


def test_a_model_failing_at_run_time_is_500_with_request_id_and_the_server_keeps_serving(
    failing_server: Server,
) -> None:
    with httpx.Client(base_url=failing_server.url, timeout=30) as client:
        assert client.post("/v2/models/failing/infer", json=X3).status_code == 200
        response = client.post("/v2/models/failing/infer", json=X1, headers={"x-request-id": "boom-1"})
        assert response.status_code == 500
        body = response.json()
        assert body["request_id"] == "boom-1" == response.headers["x-request-id"]
        assert "Traceback" not in response.text and 'File "' not in response.text
        # the same again, many times, and the server still answers
        for _ in range(5):
            assert client.post("/v2/models/failing/infer", json=X1).status_code == 500
        again = client.post("/v2/models/failing/infer", json=X3)
        assert again.status_code == 200 and len(again.json()["outputs"][0]["data"]) == 12
    assert "boom-1" in failing_server.log  # the detail is in the server's log


def test_not_ready_while_loading_then_ready(models: dict[str, Path]) -> None:
    """A Future that is not done yet stands for a model still loading (as in the server's first seconds)."""
    from concurrent.futures import Future

    from mlfn.runtime.app import create_app
    from mlfn.runtime.service import InferenceService

    future: Future[InferenceService] = Future()
    with app_in_thread(create_app(future)) as client:
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/ping").status_code == 503
        assert client.get("/v2/health/ready").json() == {"ready": False}
        loading = client.post("/v2/models/doubler/infer", json=X1)
        assert loading.status_code == 503 and loading.headers["retry-after"] == "1"
        future.set_result(InferenceService.from_dir(models["doubler"]))
        assert client.get("/ping").status_code == 200
        assert client.post("/v2/models/doubler/infer", json=X1).json()["outputs"][0]["data"] == [2, 4, 6, 8]


def test_an_unexpected_exception_is_500_internal_error_without_details(
    models: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A bug is injected on purpose (no real model raises anything but mlfn's own errors)."""
    from mlfn.runtime.app import create_app
    from mlfn.runtime.service import InferenceService, Reply

    class Buggy(InferenceService):
        def invocations(self, body: bytes, headers: Mapping[str, str]) -> Reply:
            if body == b"bug":
                raise KeyError("secret-internal-detail")
            return super().invocations(body, headers)

    service = InferenceService.from_dir(models["doubler"])
    buggy = Buggy(service.spec, service.model)
    app = create_app(buggy)

    @app.get("/custom")
    async def custom() -> dict[str, str]:  # a route a user adds to the FastAPI app
        raise RuntimeError("another-secret")

    with caplog.at_level(logging.ERROR, logger="mlfn.runtime"), app_in_thread(app) as client:
        for _ in range(3):
            response = client.post("/invocations", content=b"bug", headers={"x-request-id": "bug-1"})
            assert response.status_code == 500
            assert response.json() == {"error": "internal error", "request_id": "bug-1"}
        custom_error = client.get("/custom", headers={"x-request-id": "bug-2"})
        assert custom_error.status_code == 500
        assert custom_error.json() == {"error": "internal error", "request_id": "bug-2"}
        assert "secret" not in response.text + custom_error.text
        assert client.post("/invocations", json=X1).status_code == 200  # still serving
    logged = caplog.text
    assert "bug-1" in logged and "secret-internal-detail" in logged and "Traceback" in logged
    assert "bug-2" in logged and "another-secret" in logged


def test_a_model_that_cannot_load_stops_the_server_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not a model")
    done = subprocess.run(
        [sys.executable, "-m", "mlfn.runtime.server", "--model-dir", str(broken), "--host", "127.0.0.1",
         "--port", "0"], capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "model failed to load: model.onnx" in done.stderr
    assert "Traceback" not in done.stderr


def test_mlfn_serve_refuses_an_invalid_directory_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mlfn.cli.main", "serve", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"mlfn serve: error: {tmp_path / 'missing'}: expected a model directory holding model.onnx, "
        "got no such directory"
    ]


def test_a_busy_port_is_one_line_from_mlfn_serve() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "mlfn.cli.main", "serve", str(FUNCTIONS / "iris"),
                               "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"mlfn serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"
