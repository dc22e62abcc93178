"""The real handler (mlfn.runtime.lambda_handler under awslambdaric) on the bundled iris and topics models, through
HTTPS."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


@pytest.fixture(scope="module")
def iris(functions_dir):
    model_dir = functions_dir / "iris"
    if not (model_dir / "model.onnx").exists():
        pytest.skip("functions/iris is not built")
    return model_dir


def test_iris_through_the_function_url_matches_onnxruntime(plane, client, iris):
    ep = plane.register_model(iris, name="iris-e2e")  # the settings of functions/iris/mlfn.toml
    assert ep.kind == "lambda" and ep.auth_type == "AWS_IAM"
    try:
        body = (iris / "example.json").read_bytes()
        url = ep.url + "v1/models/iris:predict"
        reply = client.post(url, content=body, headers=_sign(url, body))
        assert reply.status_code == 200, reply.text
        assert reply.headers.get_list("content-length") == [str(len(reply.content))]  # framed once, by the gateway
        assert reply.headers["x-mlfn-cold-start"] == "true"
        predictions = reply.json()["predictions"]

        session = ort.InferenceSession(str(iris / "model.onnx"))
        feed = np.asarray(json.loads(body)["instances"], dtype=np.float32)
        expected = session.run(None, {session.get_inputs()[0].name: feed})
        labels, probabilities = expected
        assert [p["output_label"] for p in predictions] == list(labels)
        for got, want in zip(predictions, probabilities, strict=True):
            assert got["output_probability"].keys() == want.keys()
            np.testing.assert_allclose([got["output_probability"][k] for k in want], list(want.values()),
                                       rtol=1e-6)

        wrong = b'{"instances": [[1, 2]]}'
        bad = client.post(url, content=wrong, headers=_sign(url, wrong))
        assert bad.status_code == 400 and bad.headers["x-mlfn-cold-start"] == "false"
    finally:
        plane.unregister(ep.key)


def test_raw_text_through_the_function_url_matches_onnxruntime(plane, client, functions_dir):
    """functions/topics: a text/plain body, a JSON string and a v2 BYTES tensor, signed with SigV4."""
    model_dir = functions_dir / "topics"
    ep = plane.register_model(model_dir, name="topics-e2e")
    try:
        text = "Wait until every worker thread has finished, then close the pool"
        session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
        (label,), (probabilities,) = session.run(None, {"text": np.array([text], dtype=object)})
        v2 = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
        for path, body, content_type in [("invocations", text.encode(), "text/plain; charset=utf-8"),
                                         ("v1/models/topics:predict", json.dumps(text).encode(), "application/json"),
                                         ("v2/models/topics/infer", json.dumps(v2).encode(), "application/json")]:
            url = ep.url + path
            reply = client.post(url, content=body, headers=_sign(url, body, content_type))
            assert reply.status_code == 200, reply.text
            answer = reply.json()
            if "outputs" in answer:
                got = {o["name"]: o["data"] for o in answer["outputs"]}
                assert got["label"] == [label]
                np.testing.assert_allclose(got["probabilities"], probabilities, rtol=1e-6)
            else:
                assert answer["predictions"][0]["label"] == label == "concurrency"
                np.testing.assert_allclose(answer["predictions"][0]["probabilities"], probabilities, rtol=1e-6)
        latin1 = "Caf\xe9".encode("latin-1")
        url = ep.url + "invocations"
        bad = client.post(url, content=latin1, headers=_sign(url, latin1, "text/plain"))
        assert bad.status_code == 400 and "not UTF-8" in bad.json()["error"]
    finally:
        plane.unregister(ep.key)


def _sign(url: str, body: bytes, content_type: str = "application/json") -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers={"content-type": content_type})
    SigV4Auth(Credentials("mlfn-local", "mlfn-local-secret"), "lambda", "us-east-1").add_auth(request)
    return dict(request.headers)


def test_snapstart_restores_sandboxes_of_the_real_handler_without_a_second_init(plane, client, iris):
    from concurrent.futures import ThreadPoolExecutor

    ep = plane.register_model(iris, name="iris-snap", auth_type="NONE", snapstart=True)
    try:
        logs = [e["message"] for e in plane.logs.read("/aws/lambda/iris-snap")]
        assert sum(m.startswith("INIT_START") for m in logs) == 1  # publishing ran init once, before any request
        body = (iris / "example.json").read_bytes()
        url = ep.url + "v1/models/iris:predict"
        with ThreadPoolExecutor(3) as workers:
            replies = list(workers.map(lambda _: client.post(url, content=body), range(3)))
        assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
        restored = [r for r in replies if "x-mlfn-restore-duration-ms" in r.headers]
        assert restored and all(r.headers["x-mlfn-cold-start"] == "true" for r in restored)
        assert len({r.headers["x-request-id"] for r in replies}) == 3
        logs = [e["message"] for e in plane.logs.read("/aws/lambda/iris-snap")]
        assert sum(m.startswith("INIT_START") for m in logs) == 1  # restores, not inits
        reports = [m for m in logs if m.startswith("REPORT ")]
        assert any("\tRestore Duration: " in m for m in reports) and not any("Init Duration" in m for m in reports)
    finally:
        plane.unregister(ep.key)
