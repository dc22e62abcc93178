"""A SageMaker-target model answers boto3's `sagemaker-runtime.invoke_endpoint` against the emulator's endpoint
(AWS_ENDPOINT_URL), with InferenceComponentName, ContentType, Accept and CustomAttributes, as on AWS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from mlfn.cli.local.control_plane import client_environment

pytestmark = pytest.mark.slow  # one stack synthesis
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROWS = json.loads((IRIS / "example.json").read_text())["instances"]


def test_invoke_endpoint_with_boto3_reaches_the_models_container(cli: Any, h: Any, tmp_path: Path) -> None:
    model = h.copy_model(IRIS, tmp_path / "iris-runtime", name="iris-runtime", target="sagemaker")
    cli("deploy", str(model), "--local")
    outputs = cli("status", "iris-runtime", "--local", "--json").json()["outputs"]
    env = client_environment(cli("local", "status", "--json").json()["control_plane"])
    runtime = boto3.client("sagemaker-runtime", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    answer = runtime.invoke_endpoint(EndpointName=outputs["EndpointName"],
                                     InferenceComponentName=outputs["InferenceComponentName"],
                                     ContentType="application/json", Accept="application/json",
                                     CustomAttributes="trace=on", Body=json.dumps({"instances": ROWS}))
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["ContentType"].startswith("application/json")
    got = json.loads(answer["Body"].read())["predictions"]
    assert h.same_predictions(got, h.onnxruntime_answer(model, ROWS))

    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="application/json", Body=b"{}")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert caught.value.response["Error"]["Message"] == "Endpoint no-such-endpoint of account 123456789012 not found."
    cli("destroy", "iris-runtime", "--local", "--yes")
