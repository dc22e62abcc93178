"""functions/topics, the bundled text model: raw text in over every protocol, through the real `mlfn serve`
server (httpx and the unmodified Triton HTTP client with BYTES tensors) and the Lambda handler (Function URL
events), each answer compared with onnxruntime run directly on the committed model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from mlfn.runtime.lambda_adapter import LambdaHandler, build

from .conftest import FUNCTIONS
from .test_http import serving
from .test_lambda import CONTEXT, url_event

httpclient = pytest.importorskip("tritonclient.http")
EXAMPLES = json.loads((FUNCTIONS / "topics" / "example.json").read_text())["instances"]
EXPECTED = ["networking", "math and numbers", "concurrency"]  # what the examples are about
TEXT = {"content-type": "text/plain"}
JSON = {"content-type": "application/json"}


def direct(texts: list[str]) -> tuple[list[str], np.ndarray]:
    session = ort.InferenceSession(str(FUNCTIONS / "topics" / "model.onnx"), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {"text": np.array(texts, dtype=object)})
    return list(labels), probabilities


def check_predictions(predictions: list[dict[str, Any]], texts: list[str]) -> None:
    labels, probabilities = direct(texts)
    assert [p["label"] for p in predictions] == labels
    np.testing.assert_allclose([p["probabilities"] for p in predictions], probabilities, rtol=1e-6)


def test_direct_answers_are_the_topics_the_examples_are_about() -> None:
    labels, probabilities = direct(EXAMPLES)
    assert labels == EXPECTED
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serving("topics", cli=True) as address:
        yield address


@pytest.mark.parametrize("path", ["/invocations", "/"])
def test_text_plain_body_is_one_text(url: str, path: str) -> None:
    text = "Copy the file into the directory, keeping its permissions. Ünïcode is fine: 文件"
    reply = httpx.post(url + path, content=text.encode(), headers=TEXT, timeout=30)
    assert reply.status_code == 200, reply.text
    check_predictions(reply.json()["predictions"], [text])
    assert reply.json()["predictions"][0]["label"] == "files and paths"


@pytest.mark.parametrize("path", ["/invocations", "/v1/models/topics:predict"])
def test_a_json_string_is_one_text_and_a_list_of_strings_a_batch(url: str, path: str) -> None:
    one = httpx.post(url + path, json=EXAMPLES[1], timeout=30)
    assert one.status_code == 200, one.text
    check_predictions(one.json()["predictions"], [EXAMPLES[1]])
    many = httpx.post(url + path, json={"instances": EXAMPLES}, timeout=30)
    assert many.status_code == 200, many.text
    check_predictions(many.json()["predictions"], EXAMPLES)
    assert [p["label"] for p in many.json()["predictions"]] == EXPECTED
    columns = httpx.post(url + path, json={"inputs": {"text": EXAMPLES}}, timeout=30)
    assert columns.json() == many.json()


def test_v2_json_bytes_tensor(url: str) -> None:
    body = {"id": "t-1", "inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": EXAMPLES}]}
    reply = httpx.post(f"{url}/v2/models/topics/infer", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    assert outputs["label"] == {"name": "label", "datatype": "BYTES", "shape": [3], "data": EXPECTED}
    assert outputs["probabilities"]["datatype"] == "FP32" and outputs["probabilities"]["shape"] == [3, 6]
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (3, 6)), direct(EXAMPLES)[1], rtol=1e-6)
    metadata = httpx.get(f"{url}/v2/models/topics", timeout=30).json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_triton_http_client_with_bytes_tensors(url: str, binary_in: bool, binary_out: bool) -> None:
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        assert client.is_model_ready("topics")
        config = client.get_model_config("topics")
        assert config["input"] == [{"name": "text", "data_type": "TYPE_STRING", "dims": [-1]}]
        texts = np.array([t.encode() for t in EXAMPLES] + ["Ünïcode: 日付と時刻".encode()], dtype=object)
        tensor = httpclient.InferInput("text", [len(texts)], "BYTES")
        tensor.set_data_from_numpy(texts, binary_data=binary_in)
        outputs = [httpclient.InferRequestedOutput(name, binary_data=binary_out) for name in ("label", "probabilities")]
        result = client.infer("topics", [tensor], outputs=outputs, request_id="triton-text")
    finally:
        client.close()
    labels, probabilities = direct([t.decode() for t in texts])
    assert [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label")] == labels
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-6)
    assert result.get_response()["id"] == "triton-text"


def test_triton_client_hears_why_numbers_are_refused(url: str) -> None:
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        tensor = httpclient.InferInput("text", [2], "INT64")
        tensor.set_data_from_numpy(np.array([1, 2], np.int64))
        with pytest.raises(InferenceServerException, match="datatype must be BYTES"):
            client.infer("topics", [tensor])
    finally:
        client.close()


REFUSED = [  # (path, body, content type) -> words the 400 names
    ("/invocations", "Caf\xe9".encode("latin-1"), "text/plain", "text/plain body is not UTF-8 (byte 3)"),
    ("/invocations", b"", "text/plain", "the text is empty"),
    ("/invocations", b" \n\t ", "text/plain", "got only whitespace"),
    ("/invocations", b'""', "application/json", "the text is empty"),
    ("/v1/models/topics:predict", b'{"instances": [1, 2]}', "application/json", "values must be strings"),
    ("/v1/models/topics:predict", b'{"instances": ["a", 2]}', "application/json", "numbers among the strings"),
    ("/v1/models/topics:predict", b'{"instances": [true]}', "application/json", "not booleans"),
    ("/v1/models/topics:predict", b"42", "application/json", "got a number"),
    ("/invocations", b"Open a socket", "application/x-www-form-urlencoded",
     "malformed JSON in the request body at line 1 column 1 (char 0): unexpected character, expected a JSON value; "
     "send raw text as a text/plain body to /invocations, or as a JSON string"),
    ("/v2/models/topics/infer", b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [7]}]}',
     "application/json", "values must be strings"),
    ("/v2/models/topics/infer", b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": "a"}]}',
     "application/json", '"data" must be a list'),
]


@pytest.mark.parametrize(("path", "body", "content_type", "words"), REFUSED)
def test_wrong_text_is_a_400_naming_what_was_wrong(url: str, path: str, body: bytes, content_type: str,
                                                   words: str) -> None:
    reply = httpx.post(url + path, content=body, headers={"content-type": content_type}, timeout=30)
    assert reply.status_code == 400, reply.text
    assert words in reply.json()["error"]


def test_text_plain_is_refused_with_415_by_a_numeric_model() -> None:
    with serving("iris") as address:
        reply = httpx.post(f"{address}/invocations", content=b"5.1,3.5", headers=TEXT, timeout=30)
        listed = httpx.post(f"{address}/invocations", content=b"x", headers={"content-type": "text/html"}, timeout=30)
    assert reply.status_code == 415
    assert "text/plain needs a model with one string input taking one text per row" in reply.json()["error"]
    assert "text/plain" not in listed.json()["error"]  # iris does not list text/plain among what it accepts


@pytest.fixture(scope="module")
def topics() -> LambdaHandler:
    return build(FUNCTIONS / "topics")


@pytest.mark.parametrize(("path", "body", "content_type"), [
    ("/invocations", EXAMPLES[0].encode(), "text/plain; charset=utf-8"),
    ("/invocations", json.dumps(EXAMPLES[0]).encode(), "application/json"),
    ("/v1/models/topics:predict", json.dumps(EXAMPLES[0]).encode(), "application/json"),
])
def test_one_text_in_a_function_url_event(topics: LambdaHandler, path: str, body: bytes, content_type: str) -> None:
    response = topics(url_event(path, body, content_type), CONTEXT)
    assert response["statusCode"] == 200, response["body"]
    check_predictions(json.loads(response["body"])["predictions"], [EXAMPLES[0]])


def test_texts_over_v1_and_v2_in_function_url_events(topics: LambdaHandler) -> None:
    v1 = topics(url_event("/v1/models/topics:predict", json.dumps({"instances": EXAMPLES}).encode(),
                          "application/json"), CONTEXT)
    assert v1["statusCode"] == 200, v1["body"]
    check_predictions(json.loads(v1["body"])["predictions"], EXAMPLES)
    body = {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": EXAMPLES}]}
    v2 = topics(url_event("/v2/models/topics/infer", json.dumps(body).encode(), "application/json"), CONTEXT)
    assert v2["statusCode"] == 200, v2["body"]
    assert json.loads(v2["body"])["outputs"][0]["data"] == EXPECTED


def test_direct_invocation_payload(topics: LambdaHandler) -> None:
    """`aws lambda invoke --payload file://functions/topics/example.json` sends the JSON itself as the event."""
    result = topics({"instances": EXAMPLES}, CONTEXT)
    assert [p["label"] for p in result["predictions"]] == EXPECTED


def test_non_utf8_text_in_a_function_url_event_is_a_400(topics: LambdaHandler) -> None:
    response = topics(url_event("/invocations", b"\xff\xfe", "text/plain"), CONTEXT)
    assert response["statusCode"] == 400
    assert "not UTF-8" in json.loads(response["body"])["error"]
