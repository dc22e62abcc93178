"""The real handler (mlfn.runtime.lambda_handler under awslambdaric) on the bundled iris model, through HTTPS."""

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


def _sign(url: str, body: bytes) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers={"content-type": "application/json"})
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
