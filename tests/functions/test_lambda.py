"""The bundled functions through the Lambda entry point, fed Function URL events as Lambda sends them.

`events/function_url_post.json` is a Function URL event (payload format 2.0, IAM auth); each test puts its
own body, content type and path into a copy.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlfn.runtime.lambda_adapter import LambdaHandler, build

from .conftest import FUNCTIONS

EVENT = json.loads((Path(__file__).parent / "events" / "function_url_post.json").read_text())
CONTEXT = SimpleNamespace(aws_request_id="c0ffee00-0000-4000-8000-000000000001", function_version="$LATEST")


def url_event(path: str, body: bytes, content_type: str) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["headers"]["content-type"] = content_type
    event["body"] = base64.b64encode(body).decode()
    return event


@pytest.fixture(scope="module")
def digits() -> LambdaHandler:
    return build(FUNCTIONS / "digits")


@pytest.fixture(scope="module")
def iris() -> LambdaHandler:
    return build(FUNCTIONS / "iris")


@pytest.mark.parametrize("digit", [0, 3, 7])
def test_png_upload_in_a_function_url_event(digits: LambdaHandler, digit: int) -> None:
    png = (FUNCTIONS / "digits" / "examples" / f"{digit}.png").read_bytes()
    response = digits(url_event("/invocations", png, "image/png"), CONTEXT)
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["predictions"][0]["digit"] == digit


def test_corrupt_png_in_a_function_url_event_is_a_400(digits: LambdaHandler) -> None:
    response = digits(url_event("/invocations", b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "image/png"), CONTEXT)
    assert response["statusCode"] == 400
    assert "expected a PNG or JPEG" in json.loads(response["body"])["error"]


def test_iris_example_in_a_function_url_event(iris: LambdaHandler) -> None:
    body = (FUNCTIONS / "iris" / "example.json").read_bytes()
    response = iris(url_event("/v1/models/iris:predict", body, "application/json"), CONTEXT)
    assert response["statusCode"] == 200, response["body"]
    labels = [p["output_label"] for p in json.loads(response["body"])["predictions"]]
    assert labels == ["setosa", "versicolor", "virginica"]


def test_iris_direct_invocation_payload(iris: LambdaHandler) -> None:
    """`aws lambda invoke --payload file://functions/iris/example.json` sends the JSON itself as the event."""
    payload = json.loads((FUNCTIONS / "iris" / "example.json").read_text())
    result = iris(payload, CONTEXT)
    assert [p["output_label"] for p in result["predictions"]] == ["setosa", "versicolor", "virginica"]
