"""`ServingCore.quick_reply` (model calls answered without the ASGI exchange) gives exactly what the ASGI path
gives, for good and bad requests, and declines what it does not cover, which then goes the ASGI way.

Both paths run in-process on real onnxruntime sessions (iris with ZipMap, a failing Reshape for model errors).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mlfn.runtime.asgi import ServingCore
from mlfn.runtime.metrics.prometheus import PrometheusMetrics
from mlfn.runtime.service import InferenceService

from .conftest import FUNCTIONS, failing_graph, write_model

JSON = b"application/json"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def _via_asgi(core: ServingCore, method: str, path: str, headers: list[tuple[bytes, bytes]],
              body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b"",
             "http_version": "1.1", "headers": headers}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(core(scope, receive, send))
    return sent[0]["status"], list(sent[0]["headers"]), sent[1]["body"]


@pytest.fixture(scope="module")
def iris_core() -> ServingCore:
    return ServingCore(InferenceService.from_dir(FUNCTIONS / "iris"), inline=True, metrics=PrometheusMetrics())


CASES = {
    "v1 rows": ("/v1/models/iris:predict", JSON, json.dumps({"instances": [IRIS_ROW, IRIS_ROW]}).encode()),
    "v1 columns": ("/v1/models/iris:predict", JSON, json.dumps({"inputs": [IRIS_ROW]}).encode()),
    "v2 infer": ("/v2/models/iris/infer", JSON, json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": IRIS_ROW}]}).encode()),
    "invocations": ("/invocations", JSON, json.dumps({"instances": [IRIS_ROW]}).encode()),
    "invocations csv": ("/invocations", b"text/csv", b"5.1,3.5,1.4,0.2\n6.0,2.2,5.0,1.5\n"),
    "malformed JSON": ("/v1/models/iris:predict", JSON, b"{\"instances\": [1,"),
    "wrong width": ("/v1/models/iris:predict", JSON, json.dumps({"instances": [[1.0, 2.0]]}).encode()),
    "strings": ("/v1/models/iris:predict", JSON, json.dumps({"instances": [["a", "b", "c", "d"]]}).encode()),
    "unsupported type": ("/v1/models/iris:predict", b"text/plain", b"hello"),
    "v2 wrong input": ("/v2/models/iris/infer", JSON, json.dumps(
        {"inputs": [{"name": "nope", "shape": [1, 4], "datatype": "FP32", "data": IRIS_ROW}]}).encode()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_quick_reply_equals_the_asgi_reply(iris_core: ServingCore, case: str) -> None:
    path, content_type, body = CASES[case]
    rid = b"req-" + case.replace(" ", "-").encode()
    headers = [(b"host", b"test"), (b"content-type", content_type), (b"x-request-id", rid)]
    quick = iris_core.quick_reply("POST", path, headers, body)
    assert quick is not None, "the quick path declined a request it covers"
    assert quick == _via_asgi(iris_core, "POST", path, headers, body)
    status, answer_headers, answer = quick
    assert (b"x-request-id", rid) in answer_headers
    if status != 200:
        assert 400 <= status < 500 and "error" in json.loads(answer)


def test_quick_reply_makes_a_request_id_when_none_is_given(iris_core: ServingCore) -> None:
    body = json.dumps({"instances": [IRIS_ROW]}).encode()
    answer = iris_core.quick_reply("POST", "/v1/models/iris:predict", [(b"content-type", JSON)], body)
    assert answer is not None
    ids = [value for name, value in answer[1] if name == b"x-request-id"]
    assert len(ids) == 1 and len(ids[0]) == 32 and int(ids[0], 16) >= 0


@pytest.mark.parametrize("method, path, headers, body", [
    ("GET", "/v1/models/iris:predict", [], b""),  # a GET: 405 from the ASGI path
    ("POST", "/v1/models/other:predict", [(b"content-type", JSON)], b"{}"),  # another model: 404 there
    ("POST", "/v2/health/live", [], b""),  # not a model call
    ("POST", "/v1/models/iris:predict", [(b"content-type", JSON), (b"content-encoding", b"gzip")],
     gzip.compress(json.dumps({"instances": [IRIS_ROW]}).encode())),  # decompression stays on the ASGI path
])
def test_quick_reply_declines_what_it_does_not_cover(iris_core: ServingCore, method: str, path: str,
                                                     headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    assert iris_core.quick_reply(method, path, headers, body) is None
    status, _, _ = _via_asgi(iris_core, method, path, headers, body)  # and the ASGI path answers it
    assert status in (200, 404, 405)


def test_quick_reply_declines_bodies_over_the_limit(tmp_path: Path) -> None:
    directory = write_model(tmp_path / "small", failing_graph(), 'name = "small"\n[server]\nmax_body_bytes = 1024\n')
    core = ServingCore(InferenceService.from_dir(directory), inline=True)
    body = json.dumps({"instances": [[1.0] * 4] * 100}).encode()
    headers = [(b"content-type", JSON), (b"content-length", str(len(body)).encode())]
    assert len(body) > 1024
    assert core.quick_reply("POST", "/v1/models/small:predict", headers, body) is None
    assert _via_asgi(core, "POST", "/v1/models/small:predict", headers, body)[0] == 413


def test_model_errors_are_500_with_the_request_id_on_both_paths(tmp_path: Path) -> None:
    directory = write_model(tmp_path / "failing", failing_graph(), 'name = "failing"\n')
    core = ServingCore(InferenceService.from_dir(directory), inline=True)
    headers = [(b"content-type", JSON), (b"x-request-id", b"abc-1")]
    body = json.dumps({"instances": [[1.0] * 4]}).encode()  # one row: Reshape to [3, -1] fails inside onnxruntime
    quick = core.quick_reply("POST", "/v1/models/failing:predict", headers, body)
    assert quick is not None and quick == _via_asgi(core, "POST", "/v1/models/failing:predict", headers, body)
    assert quick[0] == 500 and json.loads(quick[2])["request_id"] == "abc-1"


def test_quick_replies_are_counted_in_the_metrics(iris_core: ServingCore) -> None:
    metrics = iris_core.metrics
    assert isinstance(metrics, PrometheusMetrics)

    def count() -> float:
        text = metrics.exposition()[0].decode()
        line = r'^mlfn_requests_total\{route="/v1/models/\{name\}:predict",status="200"\} (\S+)$'
        found = re.search(line, text, re.M)
        return float(found.group(1)) if found else 0.0

    before = count()
    body = json.dumps({"instances": [IRIS_ROW]}).encode()
    assert iris_core.quick_reply("POST", "/v1/models/iris:predict", [(b"content-type", JSON)], body) is not None
    assert count() == before + 1
