"""The README's main job, end to end through HTTPS: `mlfn deploy functions/iris --local`, then `mlfn invoke` and a
plain HTTPS client (httpx trusting the emulator's CA, SigV4 by botocore) give onnxruntime's own answers; the digits
model answers a PNG through its hook."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # two deploys with stack synthesis (jsii + node)
ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "functions" / "iris"
DIGITS = ROOT / "functions" / "digits"


@pytest.fixture(scope="module")
def iris(cli: Any) -> dict[str, Any]:
    # exactly the README's command, from the repository's folder
    return dict(cli("deploy", "functions/iris", "--local", "--json", cwd=ROOT).json())


def test_deploy_then_mlfn_invoke(cli: Any, h: Any, iris: dict[str, Any]) -> None:
    assert iris["status"] == "CREATED" and iris["url"].startswith("https://127.0.0.1:")
    run = cli("invoke", "iris", "--local", "--data", "@functions/iris/example.json", cwd=ROOT)
    rows = json.loads((IRIS / "example.json").read_text())["instances"]
    assert h.same_predictions(json.loads(run.stdout)["predictions"], h.onnxruntime_answer(IRIS, rows))


def test_plain_https_client_with_the_local_ca_and_sigv4(h: Any, iris: dict[str, Any]) -> None:
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = (IRIS / "example.json").read_bytes()
    url = iris["url"].rstrip("/") + "/v1/models/iris:predict"
    headers = {"content-type": "application/json"}
    with httpx.Client(verify=ssl.create_default_context(cafile=iris["ca"]), timeout=30) as client:
        unsigned = client.post(url, content=body, headers=headers)
        assert unsigned.status_code == 403  # AWS_IAM Function URL
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(Credentials("mlfn-local", "mlfn-local-secret"), "lambda", "us-east-1").add_auth(request)
        signed = client.post(url, content=body, headers=dict(request.headers.items()))
    assert signed.status_code == 200, signed.text
    rows = json.loads(body)["instances"]
    assert h.same_predictions(signed.json()["predictions"], h.onnxruntime_answer(IRIS, rows))
    with pytest.raises(httpx.ConnectError):  # the certificate is the local CA's, not one the system trusts
        httpx.post(url, content=body, headers=headers, timeout=10)


def test_digits_png_through_the_hook(cli: Any) -> None:
    deployed = cli("deploy", "functions/digits", "--local", "--json", cwd=ROOT).json()
    assert deployed["status"] == "CREATED"
    for digit in (0, 3, 7):
        run = cli("invoke", "digits", "--local", "--data", f"@functions/digits/examples/{digit}.png",
                  "--content-type", "image/png", "--json", cwd=ROOT).json()
        assert run["status"] == 200, run
        assert run["body"]["predictions"][0]["digit"] == digit  # the hook's own answer shape
