"""A SageMaker model scaled to zero copies, end to end through `mlfn deploy --local`: InvokeEndpoint (boto3
`sagemaker-runtime`) answers AWS's 400 ValidationError, the stack's REST front (as its template maps it) answers 503
with Retry-After, and `mlfn invoke` waits, says so on stderr, and succeeds once a copy is back; with a short
`--wait` it gives up with one clear line."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.slow  # one stack synthesis (jsii + node)
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROWS = json.loads((IRIS / "example.json").read_text())["instances"]
LOCAL = {"aws_access_key_id": "mlfn-local", "aws_secret_access_key": "mlfn-local-secret", "region_name": "us-east-1"}


def test_zero_copies_wait_then_answer(cli: Any, h: Any, tmp_path: Path) -> None:
    model = h.copy_model(IRIS, tmp_path / "iris-wake", name="iris-wake", target="sagemaker")
    deployed = cli("deploy", str(model), "--local", "--json").json()
    outputs = cli("status", "iris-wake", "--local", "--json").json()["outputs"]
    control = json.loads((cli.home / "local" / "control-plane.json").read_text())["url"]
    sagemaker = boto3.client("sagemaker", endpoint_url=control, **LOCAL)
    # This test plays the step policy itself (copies(1) below): the stack's scale-out alarm, which the refused
    # requests' NoCapacityInvocationFailures would fire at the next minute, is kept from acting
    # (tests/deploy/test_front_metrics_local.py lets it act).
    cfn = boto3.client("cloudformation", endpoint_url=control, **LOCAL)
    boto3.client("cloudwatch", endpoint_url=control, **LOCAL).disable_alarm_actions(AlarmNames=[
        r["PhysicalResourceId"] for r in cfn.describe_stack_resources(StackName="mlfn-iris-wake-dev")["StackResources"]
        if r["ResourceType"] == "AWS::CloudWatch::Alarm"])

    def copies(count: int) -> None:
        sagemaker.update_inference_component_runtime_config(
            InferenceComponentName=outputs["InferenceComponentName"], DesiredRuntimeConfig={"CopyCount": count})

    data = json.dumps({"instances": ROWS})
    try:
        copies(0)
        runtime = boto3.client("sagemaker-runtime", endpoint_url=deployed["url"].split("/live")[0].rstrip("/"),
                               verify=deployed["ca"], config=Config(retries={"max_attempts": 1}), **LOCAL)
        with pytest.raises(ClientError) as refused:
            runtime.invoke_endpoint(EndpointName=outputs["EndpointName"], ContentType="application/json",
                                    InferenceComponentName=outputs["InferenceComponentName"], Body=data.encode())
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert refused.value.response["Error"]["Code"] == "ValidationError"
        assert "Inference Component has no capacity" in refused.value.response["Error"]["Message"]

        front = cli("invoke", "iris-wake", "--local", "--data", data, "--wait", "0", "--json", check=False)
        assert front.code == 1 and front.json()["status"] == 503 and front.json()["headers"]["retry-after"] == "60"
        gave_up = cli("invoke", "iris-wake", "--local", "--data", data, "--wait", "2", check=False)
        assert gave_up.code == 1 and "retrying in 1s" in gave_up.stderr
        assert "iris-wake is still scaling from zero after 2s (HTTP 503)" in gave_up.stderr
        assert "Traceback" not in gave_up.stderr

        waiting = subprocess.Popen([sys.executable, "-m", "mlfn.cli.main", "invoke", "iris-wake", "--local",
                                    "--data", data, "--json"], cwd=cli.workdir, env=cli.env, text=True,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert _line_with(waiting, "model is scaling from zero, retrying in", timeout_s=120)
            copies(1)  # what the step-scaling policy on NoCapacityInvocationFailures does on AWS
            started = time.monotonic()
            out, err = waiting.communicate(timeout=60)
        finally:
            waiting.kill()
        assert waiting.returncode == 0, err
        assert time.monotonic() - started < 30  # pauses are 1, 2, 4 ... s, so a copy is noticed quickly
        answer = json.loads(out)
        assert answer["status"] == 200
        assert h.same_predictions(answer["body"]["predictions"], h.onnxruntime_answer(model, ROWS))
    finally:
        copies(1)
        cli("destroy", "iris-wake", "--local", "--yes")


def _line_with(process: subprocess.Popen[str], text: str, *, timeout_s: float) -> str:
    """The first stderr line of `process` containing `text`, waiting at most `timeout_s` seconds."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([process.stderr], [], [], left)
        line = process.stderr.readline() if ready else ""
        if text in line:
            return line
        if ready and not line:  # the process closed stderr (it ended)
            break
    return ""
