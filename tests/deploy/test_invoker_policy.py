"""The ready invoker policy `mlfn deploy` and `mlfn status` print (the stack's InvokerPolicy output) is exactly what
a caller needs: attached to a fresh IAM user of the emulator it gets 200; half of it gets Lambda's 403."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

pytestmark = pytest.mark.slow  # one deploy of a new image (synth: jsii + node)
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
BODY = (IRIS / "example.json").read_bytes()


@pytest.fixture(scope="module")
def deployed(cli: Any, h: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The model deployed to the session's emulator, destroyed afterwards (other modules list what is deployed)."""
    model = h.copy_model(IRIS, tmp_path_factory.mktemp("models") / "callers", name="callers")
    run = cli("deploy", str(model), "--local", "--json")
    result: dict[str, Any] = run.json()
    result["stderr"] = run.stderr
    result["control_plane"] = cli("local", "status", "--json").json()["control_plane"]
    yield result
    cli("destroy", "callers", "--local", "--yes")


def iam_client(control_plane: str) -> Any:
    return boto3.client("iam", endpoint_url=control_plane, region_name="us-east-1",
                        aws_access_key_id="mlfn-local", aws_secret_access_key="mlfn-local-secret")


def user_with(control_plane: str, name: str, policy: dict[str, Any]) -> Credentials:
    iam = iam_client(control_plane)
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="mlfn-invoker", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def predict(deployed: dict[str, Any], creds: Credentials) -> httpx.Response:
    url = deployed["url"].rstrip("/") + "/v1/models/callers:predict"
    request = AWSRequest(method="POST", url=url, data=BODY, headers={"content-type": "application/json"})
    SigV4Auth(creds, "lambda", deployed["region"]).add_auth(request)
    with httpx.Client(verify=ssl.create_default_context(cafile=deployed["ca"]), timeout=60) as client:
        return client.post(url, content=BODY, headers=dict(request.headers))


def test_deploy_and_status_print_the_invoker_policy(cli: Any, deployed: dict[str, Any]) -> None:
    policy = deployed["invoker_policy"]
    actions = [s["Action"] for s in policy["Statement"]]
    assert actions == ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"]
    function = deployed["outputs"]["FunctionName"]
    assert all(s["Resource"] == f"arn:aws:lambda:us-east-1:123456789012:function:{function}:live"
               for s in policy["Statement"])
    assert "callers' IAM policy (stack output InvokerPolicy" in deployed["stderr"]
    assert json.dumps(policy) in deployed["stderr"]
    status = cli("status", "callers", "--local", "--json").json()
    assert status["invoker_policy"] == policy
    assert f"invoker_policy: {json.dumps(policy)}" in cli("status", "callers", "--local").stdout


def test_the_printed_policy_on_a_fresh_user_gets_200_and_half_of_it_403(deployed: dict[str, Any]) -> None:
    policy = deployed["invoker_policy"]
    whole = predict(deployed, user_with(deployed["control_plane"], "invoker", policy))
    assert whole.status_code == 200, whole.text
    assert len(whole.json()["predictions"]) == len(json.loads(BODY)["instances"])
    url_only = {**policy, "Statement": policy["Statement"][:1]}
    half = predict(deployed, user_with(deployed["control_plane"], "url-only", url_only))
    assert half.status_code == 403 and half.headers["x-amzn-errortype"] == "AccessDeniedException"
