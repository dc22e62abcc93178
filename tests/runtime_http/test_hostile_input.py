"""Hostile input (issue 19) through every entrance: values that are not finite, booleans standing for numbers,
and requests of too many rows get a clear 4xx JSON error (naming the input, what came and what was expected),
never a 200 with null probabilities.

Entrances: the lean HTTP/1.1 server on its quick path (plain bodies, after warm-up calls) and on its ASGI path
(the same bodies gzip-encoded, which the quick path leaves to ASGI), uvicorn (`MLFN_HTTP=uvicorn`), and the
Lambda handler with Function URL events. Models: iris and digits from functions/ (and iris with `max_rows = 50`
as "rows50" for the row limit), and a small one with INT32 and BOOL inputs.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from onnx import TensorProto, helper

from mlfn.runtime.lambda_adapter import LambdaHandler, build

from .conftest import FUNCTIONS, Server, environment, write_model
from .test_lambda_handler import Context, event

MAX_ROWS = 50
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
JSON = "application/json"
Post = Callable[[str, str, bytes, str, dict[str, str]], tuple[int, dict[str, Any]]]


def typed_graph() -> Any:
    """count_out = count (int32[batch, 2]); flag_out = not flag (bool[batch, 2])."""
    return helper.make_graph(
        [helper.make_node("Identity", ["count"], ["count_out"]), helper.make_node("Not", ["flag"], ["flag_out"])],
        "typed",
        [helper.make_tensor_value_info("count", TensorProto.INT32, ["batch", 2]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, ["batch", 2])],
        [helper.make_tensor_value_info("count_out", TensorProto.INT32, ["batch", 2]),
         helper.make_tensor_value_info("flag_out", TensorProto.BOOL, ["batch", 2])],
    )


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    rows50 = root / "rows50"
    shutil.copytree(FUNCTIONS / "iris", rows50)
    (rows50 / "mlfn.toml").write_text(f'name = "iris"\n[server]\nmax_rows = {MAX_ROWS}\n', encoding="utf-8")
    return {"iris": FUNCTIONS / "iris", "rows50": rows50, "digits": FUNCTIONS / "digits",
            "typed": write_model(root / "typed", typed_graph(), 'name = "typed"\n')}


def _start(model_dir: Path, http: str) -> Server:
    with environment(MLFN_HTTP=http):
        server = Server(model_dir)
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def servers(model_dirs: dict[str, Path]) -> Iterator[Callable[[str, str], Server]]:
    started: dict[tuple[str, str], Server] = {}

    def server_for(model: str, http: str) -> Server:
        if (model, http) not in started:
            started[model, http] = _start(model_dirs[model], http)
        return started[model, http]

    yield server_for
    codes = {key: server.stop() for key, server in started.items()}
    assert all(code == 0 for code in codes.values()), codes


def _answer(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    return response.status_code, response.json()


@pytest.fixture(scope="module", params=["lean-quick", "lean-asgi", "uvicorn", "lambda"])
def post(request: pytest.FixtureRequest, servers: Callable[[str, str], Server],
         model_dirs: dict[str, Path]) -> Iterator[Post]:
    """POST a body to a model's path through one entrance: (status, JSON answer)."""
    entrance = request.param
    if entrance == "lambda":
        handlers: dict[str, LambdaHandler] = {}

        def through_lambda(model: str, path: str, body: bytes, content_type: str,
                           headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
            handler = handlers.get(model) or handlers.setdefault(model, build(model_dirs[model]))
            call = copy.deepcopy(event("function_url_v1_predict"))
            call["rawPath"] = call["requestContext"]["http"]["path"] = path
            call["headers"] = {**call["headers"], "content-type": content_type, **headers}
            call["body"], call["isBase64Encoded"] = base64.b64encode(body).decode(), True
            response = handler(call, Context())
            text = response["body"]
            answer = base64.b64decode(text) if response["isBase64Encoded"] else text.encode()
            return response["statusCode"], json.loads(answer)

        yield through_lambda
        return
    clients: dict[str, httpx.Client] = {}

    def client_for(model: str) -> httpx.Client:
        if model not in clients:
            server = servers(model, "uvicorn" if entrance == "uvicorn" else "lean")
            clients[model] = httpx.Client(base_url=server.url, timeout=30)
        return clients[model]

    def through_http(model: str, path: str, body: bytes, content_type: str,
                     headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client = client_for(model)
        sent = {"content-type": content_type, **headers}
        if entrance == "lean-asgi":
            body, sent["content-encoding"] = gzip.compress(body), "gzip"
        return _answer(client.post(path, content=body, headers=sent))

    if entrance == "lean-quick":  # calls are known to be quick after a few: then they take the quick path
        for _ in range(30):
            assert through_http("iris", "/v1/models/iris:predict", json.dumps({"instances": [IRIS_ROW]}).encode(),
                                JSON, {})[0] == 200
    yield through_http
    for client in clients.values():
        client.close()


def v2(name: str, datatype: str, shape: list[int], data: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def binary_v2(name: str, datatype: str, array: np.ndarray) -> tuple[bytes, dict[str, str]]:
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
    head = json.dumps({"inputs": [{"name": name, "datatype": datatype, "shape": list(array.shape),
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return head + raw, {"inference-header-content-length": str(len(head))}


FORTY_DIGITS = "1234567890123456789012345678901234567890"
REFUSED = {  # id -> (model, path, content type, body, extra headers, status, words in the error)
    "v1 3.5e38 for float32": ("iris", "/v1/models/iris:predict", JSON,
                              b'{"instances":[[3.5e38,3.5,1.4,0.2]]}', {}, 400,
                              ["must be finite", "3.5e+38", "beyond float32's range"]),
    "v1 a 40-digit integer": ("iris", "/v1/models/iris:predict", JSON,
                              b'{"instances":[[' + FORTY_DIGITS.encode() + b',3.5,1.4,0.2]]}', {}, 400,
                              ["must be finite", "beyond float32's range"]),
    "v2 FP32 3.5e38": ("iris", "/v2/models/iris/infer", JSON,
                       json.dumps({"inputs": [v2("input", "FP32", [1, 4], [3.5e38, 3.5, 1.4, 0.2])]}).encode(), {},
                       400, ["must be finite", "3.5e+38"]),
    "csv nan,inf": ("iris", "/invocations", "text/csv", b"nan,inf,1.4,0.2\n", {}, 400, ["must be finite", "nan"]),
    "csv 1e39": ("iris", "/invocations", "text/csv", b"5.1,1e39,1.4,0.2\n", {}, 400, ["must be finite", "1e+39"]),
    "v2 binary FP32 NaN": ("iris", "/v2/models/iris/infer", "application/octet-stream",
                           *binary_v2("input", "FP32", np.array([[np.nan, 3.5, 1.4, 0.2]], np.float32)), 400,
                           ["must be finite", "nan at [0, 0]"]),
    "v2 binary FP32 infinity": ("iris", "/v2/models/iris/infer", "application/octet-stream",
                                *binary_v2("input", "FP32", np.array([[5.1, np.inf, 1.4, 0.2]], np.float32)), 400,
                                ["must be finite", "inf at [0, 1]"]),
    "v1 true among floats": ("iris", "/v1/models/iris:predict", JSON, b'{"instances":[[true,3.5,1.4,0.2]]}', {},
                             400, ["must be numbers, not booleans", "true or false"]),
    "invocations rows with false": ("iris", "/invocations", JSON, b'[[5.1,3.5,1.4,false]]', {}, 400,
                                    ["must be numbers, not booleans"]),
    "v2 FP32 all booleans": ("iris", "/v2/models/iris/infer", JSON,
                             json.dumps({"inputs": [v2("input", "FP32", [1, 4], [True, False, True, False])]}).encode(),
                             {}, 400, ["must be numbers, not booleans"]),
    "digits 64 values with a true": ("digits", "/v1/models/digits:predict", JSON,
                                     json.dumps({"instances": [[True] + [0.0] * 63]}).encode(), {}, 400,
                                     ["'pixels'", "not booleans"]),
    "digits 64 values with 1e39": ("digits", "/invocations", JSON,
                                   json.dumps({"instances": [[1e39] + [0.0] * 63]}).encode(), {}, 400,
                                   ["'pixels'", "must be finite"]),
    "v2 INT32 2**40": ("typed", "/v2/models/typed/infer", JSON,
                       json.dumps({"inputs": [v2("count", "INT32", [1, 2], [2**40, 1]),
                                              v2("flag", "BOOL", [1, 2], [True, False])]}).encode(), {}, 400,
                       ["'count'", "out of range -2147483648..2147483647"]),
    "v2 INT32 with a boolean": ("typed", "/v2/models/typed/infer", JSON,
                                json.dumps({"inputs": [v2("count", "INT32", [1, 2], [True, 1]),
                                                       v2("flag", "BOOL", [1, 2], [True, False])]}).encode(), {},
                                400, ["'count'", "not booleans"]),
    "v1 rows over max_rows": ("rows50", "/v1/models/iris:predict", JSON,
                              json.dumps({"instances": [IRIS_ROW] * (MAX_ROWS + 1)}).encode(), {}, 413,
                              [f"{MAX_ROWS + 1} rows", f"limit is {MAX_ROWS} rows", "server.max_rows",
                               "send fewer rows per request"]),
    "csv rows over max_rows": ("rows50", "/invocations", "text/csv", b"5.1,3.5,1.4,0.2\n" * (MAX_ROWS + 1), {}, 413,
                               ["send fewer rows per request"]),
    "v2 rows over max_rows": ("rows50", "/v2/models/iris/infer", JSON,
                              json.dumps({"inputs": [v2("input", "FP32", [MAX_ROWS + 1, 4],
                                                        IRIS_ROW * (MAX_ROWS + 1))]}).encode(), {}, 413,
                              ["send fewer rows per request"]),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_hostile_values_are_refused_with_a_clear_error(post: Post, case: str) -> None:
    model, path, content_type, body, headers, status, words = REFUSED[case]
    got, answer = post(model, path, body, content_type, headers)
    assert got == status, answer
    message = answer["error"]
    for word in words:
        assert word in message, message
    assert "limit" in answer if status == 413 else {"input", "expected", "received"} <= set(answer), answer


def test_what_is_allowed_still_is(post: Post) -> None:
    status, answer = post("typed", "/v2/models/typed/infer", json.dumps({"inputs": [
        v2("count", "INT32", [1, 2], [2**31 - 1, -(2**31)]), v2("flag", "BOOL", [1, 2], [True, False])]}).encode(),
        JSON, {})
    assert status == 200, answer
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    assert outputs == {"count_out": [2**31 - 1, -(2**31)], "flag_out": [False, True]}
    status, answer = post("rows50", "/invocations", b"5.1,3.5,1.4,0.2\n" * MAX_ROWS, "text/csv", {})
    assert status == 200 and len(answer["predictions"]) == MAX_ROWS, answer
    status, answer = post("iris", "/v1/models/iris:predict",  # "true" in a string is no boolean
                          json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]], "note": "true"}).encode(), JSON, {})
    assert status == 200 and answer["predictions"][0]["output_label"] == "setosa", answer
