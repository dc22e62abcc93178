"""SageMaker endpoints and ECS services: `serve` processes behind the gateway, scale to zero, cold start on demand."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def _sign(url: str, body: bytes, service: str = "sagemaker") -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials("mlfn-local", "mlfn-local-secret"), service, "us-east-1").add_auth(request)
    return dict(request.headers)


@pytest.fixture
def stand_in(handlers_dir):
    return [sys.executable, str(handlers_dir / "tiny_server.py")]


def test_sagemaker_endpoint_invocations_with_iam_and_scale_to_zero(plane, client, handlers_dir, stand_in, wait_for):
    ep = plane.register_container("sm-tiny", handlers_dir, kind="sagemaker", idle_s=0.5, command=stand_in)
    try:
        url = ep.url + "endpoints/sm-tiny/invocations"
        assert client.post(url, content=b"{}").status_code == 403
        first = client.post(url, content=b'{"a": 1}', headers=_sign(url, b'{"a": 1}'))
        assert first.status_code == 200 and first.headers["x-mlfn-cold-start"] == "true"
        assert first.json()["echo"] == '{"a": 1}' and first.json()["content_type"] == "application/json"
        warm = client.post(url, content=b"{}", headers=_sign(url, b"{}"))
        assert warm.headers["x-mlfn-cold-start"] == "false" and warm.json()["pid"] == first.json()["pid"]
        front = ep.url + "v1/models/m:predict"  # mlfn's API Gateway front: any POST, signed for execute-api
        assert client.post(front, content=b"{}", headers=_sign(front, b"{}", "execute-api")).status_code == 200
        assert client.post(front, content=b"{}", headers=_sign(front, b"{}", "lambda")).status_code == 403
        failed = client.post(url, content=b"fail", headers=_sign(url, b"fail"))
        assert failed.status_code == 424 and failed.json()["OriginalStatusCode"] == 400
        assert failed.json()["ErrorCode"] == "CLIENT_ERROR_FROM_MODEL"

        def instance_stopped() -> bool:
            return not next(t for t in plane.status()["targets"] if t["key"] == ep.key)["instance"]["running"]

        assert wait_for(instance_stopped)
        again = client.post(url, content=b"{}", headers=_sign(url, b"{}"))
        assert again.status_code == 200 and again.headers["x-mlfn-cold-start"] == "true"
        assert any("Scaled to zero" in e["message"] for e in plane.logs.read("/aws/sagemaker/Endpoints/sm-tiny"))
    finally:
        plane.unregister(ep.key)


def test_ecs_service_is_a_plain_proxy(plane, client, handlers_dir, stand_in):
    ep = plane.register_container("ecs-tiny", handlers_dir, kind="ecs", auth_type="NONE", command=stand_in)
    try:
        assert client.get(ep.url + "ping").status_code == 200
        reply = client.post(ep.url + "invocations", content=b"fail")
        assert reply.status_code == 400  # the service's own answer, not rewritten
    finally:
        plane.unregister(ep.key)


def test_a_container_that_cannot_start_answers_503(plane, client, handlers_dir):
    ep = plane.register_container("broken", handlers_dir, kind="ecs", auth_type="NONE", command=["/nonexistent/x"])
    try:
        reply = client.get(ep.url + "ping")
        assert reply.status_code == 503 and "could not start" in reply.json()["Message"]
    finally:
        plane.unregister(ep.key)


def test_real_runtime_server_behind_the_sagemaker_gateway(plane, client, functions_dir):
    model_dir = functions_dir / "iris"
    if not (model_dir / "model.onnx").exists():
        pytest.skip("functions/iris is not built")
    ep = plane.register_container("iris-sm", model_dir, kind="sagemaker")
    try:
        url = ep.url + "endpoints/iris-sm/invocations"
        body = (model_dir / "example.json").read_bytes()
        reply = client.post(url, content=body, headers=_sign(url, body))
        assert reply.status_code == 200, reply.text
        session = ort.InferenceSession(str(model_dir / "model.onnx"))
        feed = np.asarray(json.loads(body)["instances"], dtype=np.float32)
        labels = list(session.run(None, {session.get_inputs()[0].name: feed})[0])
        assert labels and all(label in reply.text for label in labels)
    finally:
        plane.unregister(ep.key)
