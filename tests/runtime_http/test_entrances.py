"""The same good and bad requests through every entrance to the serving core give the same answer.

Entrances: mlfn's HTTP/1.1 server on its quick path (plain bodies after warm-up calls) and on its ASGI path
(the same bodies gzip-encoded, which the quick path leaves to ASGI), uvicorn with FastAPI (`MLFN_HTTP=uvicorn`),
the Lambda handler with Function URL events (served directly, `lambda_http`) and with API Gateway HTTP API
payload 1.0 events (served through Mangum). Each must give the same status, the same headers that matter
(content type, request id, allow, retry-after), the same body bytes, and count the request in its metrics
under the same route template and status.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from mlfn.runtime.lambda_adapter import LambdaHandler
from mlfn.runtime.metrics.emf import EmfMetrics
from mlfn.runtime.service import InferenceService

from .conftest import FUNCTIONS, Server, environment
from .test_lambda_handler import Context, event

IRIS = FUNCTIONS / "iris"
ROW = [5.1, 3.5, 1.4, 0.2]
JSON = "application/json"
HEADERS = ("content-type", "x-request-id", "allow", "retry-after")
ENTRANCES = ["http11-quick", "http11-asgi", "uvicorn", "lambda-direct", "lambda-mangum"]
# name -> (method, path, content type, body)
CASES: dict[str, tuple[str, str, str, bytes]] = {
    "v1 predict": ("POST", "/v1/models/iris:predict", JSON, json.dumps({"instances": [ROW, ROW]}).encode()),
    "v2 infer": ("POST", "/v2/models/iris/infer", JSON, json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}).encode()),
    "invocations csv": ("POST", "/invocations", "text/csv", b"5.1,3.5,1.4,0.2\n6.0,2.2,5.0,1.5\n"),
    "malformed JSON": ("POST", "/v1/models/iris:predict", JSON, b'{"instances": [1,'),
    "wrong width": ("POST", "/v1/models/iris:predict", JSON, json.dumps({"instances": [[1.0, 2.0]]}).encode()),
    "unknown model": ("POST", "/v1/models/nope:predict", JSON, json.dumps({"instances": [ROW]}).encode()),
    "unsupported type": ("POST", "/invocations", "application/x-nothing", b"hello"),
    "GET on predict": ("GET", "/v1/models/iris:predict", JSON, b""),
    "no such route": ("GET", "/nowhere", JSON, b""),
    "ping": ("GET", "/ping", JSON, b""),
    "v2 ready": ("GET", "/v2/models/iris/ready", JSON, b""),
}
Answer = tuple[int, dict[str, str], bytes, tuple[str, int]]  # status, headers that matter, body, (route, status)
Send = Callable[[str, str, str, bytes, str], Answer]
COUNTER = re.compile(r'^mlfn_requests_total\{route="([^"]*)",status="(\d+)"\} ([0-9.e+]+)$', re.M)


def _counts(client: httpx.Client) -> dict[tuple[str, int], float]:
    return {(route, int(status)): float(n) for route, status, n in COUNTER.findall(client.get("/metrics").text)}


def _server_entrance(entrance: str) -> Iterator[Send]:
    with environment(MLFN_HTTP="uvicorn" if entrance == "uvicorn" else "lean"):
        server = Server(IRIS)
    server.wait_ready()
    client = httpx.Client(base_url=server.url, timeout=30)

    def send(method: str, path: str, content_type: str, body: bytes, rid: str) -> Answer:
        headers = {"content-type": content_type, "x-request-id": rid}
        if entrance == "http11-asgi" and body:
            body, headers["content-encoding"] = gzip.compress(body), "gzip"
        before = _counts(client)
        response = client.request(method, path, content=body, headers=headers)
        after = _counts(client)
        counted = [key for key in after if after[key] - before.get(key, 0) >= 1 and key[0] != "/metrics"]
        assert len(counted) == 1, counted
        kept = {name: response.headers[name] for name in HEADERS if name in response.headers}
        return response.status_code, kept, response.content, counted[0]

    try:
        if entrance == "http11-quick":  # calls known to be quick take the quick path
            for _ in range(30):
                assert send(*CASES["v1 predict"][:4], "warm-up")[0] == 200
        yield send
    finally:
        client.close()
        assert server.stop() == 0


def _lambda_entrance(entrance: str) -> Iterator[Send]:
    lines: list[str] = []
    handler = LambdaHandler(InferenceService.from_dir(IRIS), metrics=EmfMetrics(write=lines.append))

    def send(method: str, path: str, content_type: str, body: bytes, rid: str) -> Answer:
        headers = {"content-type": content_type, "x-request-id": rid, "host": "example.com"}
        encoded = base64.b64encode(body).decode()
        if entrance == "lambda-direct":
            call = copy.deepcopy(event("function_url_v1_predict"))
            call["rawPath"] = call["requestContext"]["http"]["path"] = path
            call["requestContext"]["http"]["method"] = method
            call["headers"] = headers
        else:
            call = copy.deepcopy(event("apigw_http_v1_ping"))
            call["path"] = call["requestContext"]["path"] = path
            call["httpMethod"] = call["requestContext"]["httpMethod"] = method
            call["headers"], call["multiValueHeaders"] = headers, {k: [v] for k, v in headers.items()}
        call["body"], call["isBase64Encoded"] = (encoded, True) if body else (None, False)
        lines.clear()
        response = handler(call, Context())
        raw = response.get("body") or ""
        answer = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()
        got = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        for k, values in (response.get("multiValueHeaders") or {}).items():
            got[k.lower()] = ", ".join(values)
        emf = json.loads(lines[-1])
        return (response["statusCode"], {name: got[name] for name in HEADERS if name in got}, answer,
                (emf["Route"], emf["Status"]))

    yield send


@pytest.fixture(scope="module", params=ENTRANCES)
def through(request: pytest.FixtureRequest) -> Iterator[tuple[str, Send]]:
    entrance: str = request.param
    make = _lambda_entrance if entrance.startswith("lambda") else _server_entrance
    for send in make(entrance):
        yield entrance, send


ANSWERS: dict[str, dict[str, Answer]] = {}


@pytest.mark.parametrize("case", list(CASES))
def test_every_entrance_answers_alike(through: tuple[str, Send], case: str) -> None:
    entrance, send = through
    method, path, content_type, body = CASES[case]
    answer = send(method, path, content_type, body, f"req-{case.replace(' ', '-')}")
    status, headers, payload, counted = answer
    assert headers["x-request-id"] == f"req-{case.replace(' ', '-')}"
    assert counted[1] == status
    if status >= 400:
        assert "error" in json.loads(payload)
    seen = ANSWERS.setdefault(case, {})
    for other, theirs in seen.items():
        assert answer == theirs, f"{entrance} and {other} differ on {case!r}:\n{answer}\n{theirs}"
    seen[entrance] = answer
