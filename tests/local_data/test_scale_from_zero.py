"""An inference component at zero copies: the emulator's InvokeEndpoint answers AWS's 400 ValidationError (boto3's
`sagemaker-runtime` sees it), and the stack's REST front (its integration responses and mapping template) turns it
into 503 + Retry-After. Copies are changed through the control plane's SageMaker API, as autoscaling would."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from mlfn.cli.local.control_plane import ControlPlane
from mlfn.cli.local.data_plane import DataPlane
from mlfn.infra.fronts import NO_CAPACITY_TEMPLATE

ROLE = "arn:aws:iam::123456789012:role/mlfn-sagemaker"
NO_CAPACITY = ("Inference Component has no capacity to process this request. ApplicationAutoScaling may be "
               "in-progress (if configured) or try to increase the capacity by invoking "
               "UpdateInferenceComponentRuntimeConfig API.")
LOCAL = {"aws_access_key_id": "mlfn-local", "aws_secret_access_key": "mlfn-local-secret", "region_name": "us-east-1"}
# What mlfn's SageMakerRestFront puts in the stack's AWS::ApiGateway::Method (tests/infra checks the template side)
CONTENT_TYPE = {"method.response.header.Content-Type": "integration.response.header.Content-Type"}
FRONT = {
    "RequestParameters": {
        "integration.request.header.Content-Type": "method.request.header.Content-Type",
        "integration.request.header.X-Amzn-SageMaker-Inference-Component": "'zero-ic'",
    },
    "IntegrationResponses": [
        {"StatusCode": "200", "ResponseParameters": CONTENT_TYPE},
        {"StatusCode": "424", "SelectionPattern": "424", "ResponseParameters": CONTENT_TYPE},
        {"StatusCode": "429", "SelectionPattern": "429", "ResponseParameters": CONTENT_TYPE},
        {"StatusCode": "400", "SelectionPattern": "4(?!24|29)\\d{2}", "ResponseParameters": CONTENT_TYPE,
         "ContentHandling": "CONVERT_TO_TEXT", "ResponseTemplates": {"application/json": NO_CAPACITY_TEMPLATE}},
        {"StatusCode": "503", "SelectionPattern": "503",
         "ResponseParameters": {**CONTENT_TYPE, "method.response.header.Retry-After": "'60'"}},
        {"StatusCode": "502", "SelectionPattern": "5(?!03)\\d{2}", "ResponseParameters": CONTENT_TYPE},
    ],
}


@pytest.fixture(scope="module")
def sagemaker(plane: DataPlane) -> Iterator[Any]:
    """The control plane sharing the data plane's state directory, with an endpoint hosting component zero-ic."""
    with ControlPlane(state_dir=plane.state_dir) as control:
        sm = boto3.client("sagemaker", endpoint_url=control.url, **LOCAL)
        sm.create_model(ModelName="zero-model", ExecutionRoleArn=ROLE,
                        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/zero:1"})
        sm.create_endpoint_config(EndpointConfigName="zero-config", ExecutionRoleArn=ROLE, ProductionVariants=[{
            "VariantName": "AllTraffic", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1,
            "ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 1}}])
        sm.create_endpoint(EndpointName="zero-sm", EndpointConfigName="zero-config")
        sm.create_inference_component(
            InferenceComponentName="zero-ic", EndpointName="zero-sm", VariantName="AllTraffic",
            Specification={"ModelName": "zero-model", "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 512}},
            RuntimeConfig={"CopyCount": 1})
        yield sm


def _copies(sm: Any, count: int) -> None:
    sm.update_inference_component_runtime_config(InferenceComponentName="zero-ic",
                                                 DesiredRuntimeConfig={"CopyCount": count})


def _signed(url: str, body: bytes) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body,
                         headers={"content-type": "application/json", "accept": "application/json"})
    SigV4Auth(Credentials("mlfn-local", "mlfn-local-secret"), "execute-api", "us-east-1").add_auth(request)
    return dict(request.headers)


def test_zero_copies_is_a_400_for_invoke_endpoint_and_a_503_at_the_front(plane, client, sagemaker, handlers_dir):
    ep = plane.register_container("zero-sm", handlers_dir, kind="sagemaker", front=FRONT,
                                  command=[sys.executable, str(handlers_dir / "tiny_server.py")])
    runtime = boto3.client("sagemaker-runtime", endpoint_url=ep.url.rstrip("/"), verify=str(plane.ca_path),
                           config=Config(retries={"max_attempts": 1}), **LOCAL)
    front = ep.url + "live/invocations"

    def invoke() -> dict[str, Any]:
        return runtime.invoke_endpoint(EndpointName="zero-sm", InferenceComponentName="zero-ic",
                                       ContentType="application/json", Body=b'{"a": 1}')
    try:
        assert invoke()["ResponseMetadata"]["HTTPStatusCode"] == 200  # one copy: served
        _copies(sagemaker, 0)
        with pytest.raises(ClientError) as refused:
            invoke()
        error = refused.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert (error["Error"]["Code"], error["Error"]["Message"]) == ("ValidationError", NO_CAPACITY)

        waking = client.post(front, content=b'{"a": 1}', headers=_signed(front, b'{"a": 1}'))
        assert waking.status_code == 503 and waking.headers["retry-after"] == "60"
        assert NO_CAPACITY in waking.text
        bad = client.post(front, content=b"fail", headers=_signed(front, b"fail"))  # nothing reaches the model
        assert bad.status_code == 503

        _copies(sagemaker, 1)
        assert client.post(front, content=b'{"a": 1}', headers=_signed(front, b'{"a": 1}')).status_code == 200
        assert client.post(front, content=b"fail", headers=_signed(front, b"fail")).status_code == 424
        assert invoke()["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        _copies(sagemaker, 1)
        plane.unregister(ep.key)


def test_a_front_template_outside_the_evaluated_subset_is_refused() -> None:
    from mlfn.cli.local.rest_front import UnsupportedFront, front_of_template

    method = {"Type": "AWS::ApiGateway::Method", "Properties": {"HttpMethod": "POST", "Integration": {
        "Uri": {"Fn::Join": ["", ["arn:aws:apigateway:us-east-1:runtime.sagemaker:path/endpoints/x/invocations"]]},
        "IntegrationResponses": [{"StatusCode": "400", "SelectionPattern": "4\\d{2}",
                                  "ResponseTemplates": {"application/json": "#foreach($x in $input.path('$'))"}}]}}}
    with pytest.raises(UnsupportedFront, match="foreach"):
        front_of_template({"Resources": {"M": method}})
    assert front_of_template({"Resources": {}}) == {}
