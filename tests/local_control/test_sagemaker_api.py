"""SageMaker calls the emulator adds to moto: inference components, endpoint configs without a model per variant,
current instance types."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

ROLE = "arn:aws:iam::123456789012:role/mlfn-sagemaker"


@pytest.fixture()
def endpoint() -> str:
    sm = boto3.client("sagemaker")
    if sm.list_endpoints(NameContains="ic-endpoint")["Endpoints"]:
        return "ic-endpoint"
    sm.create_model(ModelName="ic-model", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris:1"})
    sm.create_endpoint_config(EndpointConfigName="ic-config", ExecutionRoleArn=ROLE, ProductionVariants=[{
        "VariantName": "AllTraffic", "InstanceType": "ml.g5.xlarge", "InitialInstanceCount": 1,
        "ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 1}}])
    sm.create_endpoint(EndpointName="ic-endpoint", EndpointConfigName="ic-config")
    return "ic-endpoint"


def test_inference_component_lifecycle(endpoint: str) -> None:
    sm = boto3.client("sagemaker")
    arn = sm.create_inference_component(
        InferenceComponentName="iris-ic", EndpointName=endpoint, VariantName="AllTraffic",
        Specification={"ModelName": "ic-model", "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 1024}},
        RuntimeConfig={"CopyCount": 1})["InferenceComponentArn"]
    assert arn.endswith(":inference-component/iris-ic")
    described = sm.describe_inference_component(InferenceComponentName="iris-ic")
    assert (described["EndpointName"], described["InferenceComponentStatus"]) == (endpoint, "InService")
    assert described["Specification"]["ModelName"] == "ic-model"
    sm.update_inference_component_runtime_config(InferenceComponentName="iris-ic",
                                                 DesiredRuntimeConfig={"CopyCount": 0})
    assert sm.describe_inference_component(InferenceComponentName="iris-ic")["RuntimeConfig"]["DesiredCopyCount"] == 0
    listed = sm.list_inference_components(EndpointNameEquals=endpoint)["InferenceComponents"]
    assert [c["InferenceComponentName"] for c in listed] == ["iris-ic"]
    sm.delete_inference_component(InferenceComponentName="iris-ic")
    with pytest.raises(ClientError, match="Could not find inference component"):
        sm.describe_inference_component(InferenceComponentName="iris-ic")


def test_inference_component_needs_a_real_endpoint_and_model(endpoint: str) -> None:
    sm = boto3.client("sagemaker")
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sm.create_inference_component(InferenceComponentName="x", EndpointName="missing", VariantName="AllTraffic",
                                      Specification={"ModelName": "ic-model"}, RuntimeConfig={"CopyCount": 1})
    with pytest.raises(ClientError, match="Could not find model"):
        sm.create_inference_component(InferenceComponentName="x", EndpointName=endpoint, VariantName="AllTraffic",
                                      Specification={"ModelName": "missing"}, RuntimeConfig={"CopyCount": 1})


def test_instance_types_are_checked_for_shape_not_age() -> None:
    sm = boto3.client("sagemaker")
    sm.create_endpoint_config(EndpointConfigName="p5-config", ProductionVariants=[
        {"VariantName": "v", "InstanceType": "ml.p5.48xlarge", "InitialInstanceCount": 1}])
    with pytest.raises(ClientError, match="instanceType"):
        sm.create_endpoint_config(EndpointConfigName="bad-config", ProductionVariants=[
            {"VariantName": "v", "InstanceType": "g5.xlarge", "InitialInstanceCount": 1}])


def test_scalable_target_on_inference_component_copies(endpoint: str) -> None:
    aas = boto3.client("application-autoscaling")
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId="inference-component/iris-other",
                                 ScalableDimension="sagemaker:inference-component:DesiredCopyCount",
                                 MinCapacity=0, MaxCapacity=2)
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker",
                                            ResourceIds=["inference-component/iris-other"])["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(0, 2)]
    with pytest.raises(ClientError, match="Unsupported"):
        aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId="endpoint/x",
                                     ScalableDimension="sagemaker:inference-component:DesiredCopyCount",
                                     MinCapacity=0, MaxCapacity=2)


def test_serverless_config_refuses_a_model_with_network_isolation() -> None:
    # Serverless Inference does not support network isolation ("Feature exclusions"); AWS documents no message,
    # so the wording is the emulator's, with SageMaker's ValidationException.
    sm = boto3.client("sagemaker")
    image = {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris:1"}
    sm.create_model(ModelName="isolated", ExecutionRoleArn=ROLE, PrimaryContainer=image, EnableNetworkIsolation=True)
    sm.create_model(ModelName="open", ExecutionRoleArn=ROLE, PrimaryContainer=image)
    assert sm.describe_model(ModelName="isolated")["EnableNetworkIsolation"] is True
    serverless = {"MemorySizeInMB": 2048, "MaxConcurrency": 2}
    with pytest.raises(ClientError) as refused:
        sm.create_endpoint_config(EndpointConfigName="isolated-serverless", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "isolated", "ServerlessConfig": serverless}])
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "network isolation" in error["Message"].lower() and "model/isolated" in error["Message"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    sm.create_endpoint_config(EndpointConfigName="open-serverless", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "open", "ServerlessConfig": serverless}])
    sm.create_endpoint_config(EndpointConfigName="isolated-instances", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "isolated", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 1}])
