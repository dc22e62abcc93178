"""The Lambda handler called in-process with Function URL and API Gateway events stored as JSON files.

Lambda's context object is made by the runtime interface client, which only runs inside Lambda; a plain
object with the same attributes stands in for it. Everything else is real: the module built at import from
MLFN_MODEL_DIR, Mangum, the serving core, onnxruntime and the EMF lines on stdout.
"""

from __future__ import annotations

import base64
import copy
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from mlfn.runtime.lambda_adapter import LambdaHandler, build

from .conftest import FUNCTIONS, ort_run

EVENTS = Path(__file__).parent / "events"
HEAVY_OR_FORBIDDEN = ("boto3", "botocore", "aws_cdk", "constructs", "mlfn.cli", "mlfn.infra", "fastapi", "pydantic",
                      "prometheus_client", "uvicorn", "starlette", "onnx", "sklearn", "moto")


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


@dataclass
class Context:
    """The attributes of Lambda's context object that the handler reads."""

    aws_request_id: str = "8f5a2c1e-0d4b-4f8e-9d61-3a7c2b1e0f99"
    function_name: str = "mlfn-iris-dev"
    function_version: str = "7"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlfn-iris-dev:live"
    memory_limit_in_mb: str = "1024"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def emf_lines(captured: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{") and '"_aws"' in line]


@pytest.fixture(scope="module")
def module() -> Iterator[ModuleType]:
    """`mlfn.runtime.lambda_handler` imported as Lambda imports it: MLFN_MODEL_DIR set, model loaded at import."""
    previous = os.environ.get("MLFN_MODEL_DIR")
    os.environ["MLFN_MODEL_DIR"] = str(FUNCTIONS / "iris")
    try:
        name = "mlfn.runtime.lambda_handler"
        loaded = importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)
        yield loaded
    finally:
        if previous is None:
            os.environ.pop("MLFN_MODEL_DIR", None)
        else:
            os.environ["MLFN_MODEL_DIR"] = previous


@pytest.fixture(scope="module")
def doubler_handler(models: dict[str, Path]) -> LambdaHandler:
    return build(models["doubler"])


def test_function_url_v1_predict_equals_onnxruntime(module: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    response = module.handler(event("function_url_v1_predict"), Context())
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is False
    assert response["headers"]["content-type"] == "application/json"
    assert response["headers"]["x-request-id"] == Context.aws_request_id  # Lambda's id when the caller sent none
    predictions = json.loads(response["body"])["predictions"]
    rows = json.loads(event("function_url_v1_predict")["body"])["instances"]
    labels, _ = ort_run(FUNCTIONS / "iris", {"input": np.array(rows, np.float32)})
    assert [p["output_label"] for p in predictions] == list(labels)
    (line,) = emf_lines(capsys.readouterr().out)
    assert line["Model"] == "iris" and line["Route"] == "/v1/models/{name}:predict" and line["Status"] == 200
    assert line["RequestId"] == Context.aws_request_id and line["FunctionVersion"] == "7"
    assert line["BatchRows"] == 2 and line["InferenceLatency"] > 0


def test_api_gateway_rest_csv_invocation(module: ModuleType) -> None:
    response = module.handler(event("apigw_rest_invocations_csv"), Context())
    assert response["statusCode"] == 200, response["body"]
    assert response["headers"]["x-request-id"] == "client-trace-7"  # the caller's id wins
    assert [p["output_label"] for p in json.loads(response["body"])["predictions"]] == ["setosa", "versicolor"]
    assert "multiValueHeaders" in response  # the REST API proxy response format


def test_api_gateway_http_api_payload_v2_and_v1(module: ModuleType) -> None:
    metadata = module.handler(event("apigw_http_v2_model_metadata"), Context())
    assert metadata["statusCode"] == 200
    assert json.loads(metadata["body"])["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    ping = module.handler(event("apigw_http_v1_ping"), Context())
    assert ping["statusCode"] == 200 and ping["body"] == ""


def test_binary_bodies_are_base64_both_ways(doubler_handler: LambdaHandler) -> None:
    response = doubler_handler(event("function_url_v2_binary_infer"), Context())
    assert response["statusCode"] == 200, response["body"]
    assert response["isBase64Encoded"] is True
    assert response["headers"]["content-type"] == "application/octet-stream"
    body = base64.b64decode(response["body"])
    length = int(response["headers"]["inference-header-content-length"])
    assert json.loads(body[:length])["outputs"][0]["name"] == "y"
    np.testing.assert_array_equal(np.frombuffer(body[length:], np.float32), [2.0, 4.0, 6.0, 8.0])


def test_image_upload_through_a_function_url(models: dict[str, Path]) -> None:
    response = build(models["digits"])(event("function_url_png_invocations"), Context())
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["predictions"][0]["digit"] == 7


def test_cold_start_is_in_the_first_emf_line_only(models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    handler = build(models["doubler"])
    capsys.readouterr()
    infer = event("function_url_v2_binary_infer")
    for _ in range(3):
        assert handler(copy.deepcopy(infer), Context())["statusCode"] == 200
    lines = emf_lines(capsys.readouterr().out)
    assert len(lines) == 3  # one line per invocation
    first, second, third = lines
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "mlfn" and directive["Dimensions"] == [["Model"]]
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert names["Latency"] == "Milliseconds" and names["ColdStart"] == "Count" and "InitDuration" in names
    assert all(name in first for name in names)  # every declared metric has its value in the line
    assert first["ColdStart"] == 1 and first["InitDuration"] > 0
    assert second["ColdStart"] == 0 and "InitDuration" not in second and third["ColdStart"] == 0
    assert first["Model"] == "doubler" and isinstance(first["_aws"]["Timestamp"], int)


def test_metrics_route_is_404_json_on_lambda_and_docs_load_on_demand(module: ModuleType) -> None:
    metrics = module.handler(event("function_url_metrics"), Context())
    assert metrics["statusCode"] == 404
    assert "Embedded Metric Format" in json.loads(metrics["body"])["error"]
    openapi = module.handler(event("function_url_openapi"), Context())
    assert openapi["statusCode"] == 200
    assert openapi["headers"]["x-request-id"] == Context.aws_request_id
    assert "/v1/models/{name}:predict" in json.loads(openapi["body"])["paths"]


def test_errors_are_json_and_never_a_stack_trace(module: ModuleType) -> None:
    bad_json = event("function_url_v1_predict")
    bad_json["body"] = '{"instances": [[1, 2'
    response = module.handler(bad_json, Context())
    assert response["statusCode"] == 400 and "error" in json.loads(response["body"])
    bad_b64 = event("function_url_v1_predict")
    bad_b64.update(body="not*base64!", isBase64Encoded=True)
    response = module.handler(bad_b64, Context())
    assert response["statusCode"] == 400 and "base64" in json.loads(response["body"])["error"]
    missing = event("function_url_metrics")
    missing["rawPath"] = missing["requestContext"]["http"]["path"] = "/nope"
    response = module.handler(missing, Context())
    assert response["statusCode"] == 404 and json.loads(response["body"])["error"] == "no route GET /nope"


def test_a_response_over_lambdas_payload_limit_is_a_clear_413(models: dict[str, Path]) -> None:
    handler = build(models["tiling"])
    request = event("function_url_v1_predict")
    request["rawPath"] = request["requestContext"]["http"]["path"] = "/invocations"
    request["body"] = json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]]})
    response = handler(request, Context())
    assert response["statusCode"] == 413
    assert "payload limit" in json.loads(response["body"])["error"]


def test_direct_invocation_with_a_plain_json_payload(module: ModuleType) -> None:
    result = module.handler({"instances": [[5.1, 3.5, 1.4, 0.2]]}, Context())
    assert result["predictions"][0]["output_label"] == "setosa"
    error = module.handler({"instances": [[5.1, 3.5]]}, Context())
    assert error["status"] == 400 and "input" in error["error"]


def _python(code: str, model_dir: Path | str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFN_MODEL_DIR": str(model_dir)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_importing_the_handler_loads_nothing_heavy_or_from_the_control_plane() -> None:
    done = _python("import json, sys\nimport mlfn.runtime.lambda_handler as h\n"
                   "assert h.handler.service.ready()\nprint(json.dumps(sorted(sys.modules)))", FUNCTIONS / "iris")
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    offenders = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in HEAVY_OR_FORBIDDEN)]
    assert offenders == []
    assert "onnxruntime" in loaded  # what it needs is there
    # Function URL events are served without Mangum or asyncio: both load on first use of another event type
    assert "mangum" not in loaded and "asyncio" not in loaded


def test_a_missing_model_fails_the_init_phase_with_one_clear_message(tmp_path: Path) -> None:
    done = _python("import mlfn.runtime.lambda_handler", tmp_path / "nothing")
    assert done.returncode != 0
    assert "expected a model directory holding model.onnx, got no such directory" in done.stderr
