"""A template that `mlfn synth --image URI` wrote, deployed with the AWS CLI's `cloudformation deploy` (no mlfn
deploy), is served: the emulator's data plane follows what the control plane holds, whoever put it there."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mlfn.cli.local.control_plane import client_environment

ROOT = Path(__file__).resolve().parents[2]
# `.ci/setup.sh --dev` installs the AWS CLI in a venv of its own (awscli pins its own botocore)
_OWN_AWS = ROOT / ".venv-awscli" / "bin" / "aws"
AWS = str(_OWN_AWS) if _OWN_AWS.exists() else shutil.which("aws")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(AWS is None, reason="no AWS CLI: run .ci/setup.sh --dev")]
IRIS = ROOT / "functions" / "iris"
ROWS = json.loads((IRIS / "example.json").read_text())["instances"]


def test_aws_cli_cloudformation_deploy_of_a_synthesized_template_is_served(fresh_cli: Any, h: Any,
                                                                          tmp_path: Path) -> None:
    cli = fresh_cli
    info = cli("local", "start", "--json").json()
    env = client_environment(info["control_plane"])
    model = h.copy_model(IRIS, tmp_path / "byhand", name="byhand")
    image = cli("push", str(model), "--base", "none", "--json", env=env).json()["reference"]
    template = cli("synth", str(model), "--image", image, "--out", str(tmp_path / "out"), "--json").json()["template"]

    aws_env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **env,
               "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    deployed = subprocess.run([str(AWS), "cloudformation", "deploy", "--template-file", template, "--stack-name",
                               "by-hand", "--capabilities", "CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
                              env=aws_env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    cfn = boto3.client("cloudformation", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    stack = cfn.describe_stacks(StackName="by-hand")["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    url = outputs["InvokeUrl"].rstrip("/") + "/v1/models/byhand:predict"
    body = json.dumps({"instances": ROWS}).encode()
    context = ssl.create_default_context(cafile=info["ca"])

    def call() -> httpx.Response | None:
        request = AWSRequest("POST", url, data=body, headers={"content-type": "application/json"})
        SigV4Auth(Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]), "lambda",
                  "us-east-1").add_auth(request)
        try:
            reply = httpx.post(url, content=body, headers=dict(request.headers.items()), verify=context, timeout=60)
        except httpx.TransportError:
            return None
        return reply if reply.status_code == 200 else None

    deadline = time.monotonic() + 90
    reply = call()
    while reply is None and time.monotonic() < deadline:
        time.sleep(0.5)
        reply = call()
    assert reply is not None, "the Function URL of the stack deployed with the AWS CLI was never served"
    assert h.same_predictions(reply.json()["predictions"], h.onnxruntime_answer(model, ROWS))

    # the AWS CLI's lambda invoke of the stack's alias runs the function too (a direct payload: the runtime serves it
    # as POST /invocations); AWS CLI v1 sends --payload as given
    answer = tmp_path / "answer.json"
    invoked = subprocess.run([str(AWS), "lambda", "invoke", "--function-name", outputs["FunctionName"], "--qualifier",
                              outputs["AliasName"], "--payload",
                              json.dumps({"instances": ROWS}), str(answer)],
                             env=aws_env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert invoked.returncode == 0, invoked.stdout + invoked.stderr
    meta = json.loads(invoked.stdout)
    assert meta["StatusCode"] == 200 and "FunctionError" not in meta, meta
    assert h.same_predictions(json.loads(answer.read_text())["predictions"], h.onnxruntime_answer(model, ROWS))
