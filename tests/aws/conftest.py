"""Fixtures for the deploy engine's tests: the emulator's control plane on 127.0.0.1 (real moto server over HTTP) and
templates that exercise every resource type the emulator adds."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mlfn.cli.aws.session import local_session
from mlfn.cli.local.control_plane import ControlPlane, client_environment

_names = itertools.count(1)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(state_dir=tmp_path_factory.mktemp("emulator")) as plane:
        # moto's backends belong to the process and this plane lives for the whole session: its alarm evaluator
        # would run scaling actions on the alarms of later tests' control planes (tests/local_control), once a
        # minute, behind their backs. These tests read alarms; none needs them evaluated.
        plane.alarms.stop()
        yield plane


@pytest.fixture(autouse=True)
def emulator_env(control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every boto3 client in these tests goes to the emulator, never to AWS."""
    for name, value in client_environment(control_plane.url).items():
        monkeypatch.setenv(name, value)


@pytest.fixture()
def session(emulator_env: None) -> Any:
    return local_session()


@pytest.fixture()
def stack_name() -> str:
    return f"mlfn-test{next(_names)}-dev"


@pytest.fixture(scope="session")
def image_uri(control_plane: ControlPlane) -> str:
    import boto3

    ecr = boto3.client("ecr", endpoint_url=control_plane.url, region_name="us-east-1",
                       aws_access_key_id="mlfn-local", aws_secret_access_key="mlfn-local-secret")
    repo = ecr.create_repository(repositoryName="mlfn-deploy-tests")["repository"]
    return f"{repo['repositoryUri']}@sha256:{'ab' * 32}"


def lambda_template(image_uri: str, *, memory: int = 2048, version_id: str = "Version1") -> dict[str, Any]:
    """A Lambda target as mlfn deploys it: image function, version, alias with provisioned concurrency, IAM Function
    URL on the alias, provisioned-concurrency autoscaling and an error alarm."""
    return {
        "Parameters": {
            "BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>",
                                 "Default": "/cdk-bootstrap/hnb659fds/version"},
        },
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                               "Action": "sts:AssumeRole"}]}}},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
                "PackageType": "Image", "Code": {"ImageUri": image_uri}, "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "MemorySize": memory, "Timeout": 30, "Architectures": ["x86_64"], "EphemeralStorage": {"Size": 1024},
                "ImageConfig": {"Command": ["mlfn.runtime.lambda_handler.handler"]},
                "Tags": [{"Key": "mlfn:model", "Value": "iris"}]}},
            version_id: {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Fn"}}},
            "Alias": {"Type": "AWS::Lambda::Alias", "Properties": {
                "FunctionName": {"Ref": "Fn"}, "FunctionVersion": {"Fn::GetAtt": [version_id, "Version"]},
                "Name": "live", "ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 1}}},
            "Url": {"Type": "AWS::Lambda::Url", "Properties": {"TargetFunctionArn": {"Ref": "Alias"},
                                                              "AuthType": "AWS_IAM"}},
            "Target": {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "DependsOn": ["Alias"], "Properties": {
                "ServiceNamespace": "lambda", "ScalableDimension": "lambda:function:ProvisionedConcurrency",
                "ResourceId": {"Fn::Join": ["", ["function:", {"Ref": "Fn"}, ":live"]]},
                "MinCapacity": 1, "MaxCapacity": 4}},
            "Utilization": {"Type": "AWS::ApplicationAutoScaling::ScalingPolicy", "Properties": {
                "PolicyName": "utilization", "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": {"Ref": "Target"},
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": 0.7,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}}}},
            "Errors": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
                "ComparisonOperator": "GreaterThanOrEqualToThreshold", "EvaluationPeriods": 1, "Threshold": 1,
                "MetricName": "Errors", "Namespace": "AWS/Lambda", "Period": 60, "Statistic": "Sum",
                "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": "Fn"}}]}},
            "CDKMetadata": {"Type": "AWS::CDK::Metadata", "Properties": {"Analytics": "v2:deflate64:H4sI"}},
        },
        "Outputs": {
            "InvokeUrl": {"Value": {"Fn::GetAtt": ["Url", "FunctionUrl"]}},
            "AuthType": {"Value": "AWS_IAM"},
            "Target": {"Value": "lambda"},
            "FunctionName": {"Value": {"Ref": "Fn"}},
            "AliasName": {"Value": "live"},
            "AliasArn": {"Value": {"Fn::GetAtt": ["Alias", "AliasArn"]}},
            "Version": {"Value": {"Fn::GetAtt": [version_id, "Version"]}},
            "AlarmArn": {"Value": {"Fn::GetAtt": ["Errors", "Arn"]}},
        },
    }


def sagemaker_template(image_uri: str, *, instance_type: str = "ml.g5.xlarge") -> dict[str, Any]:
    """A SageMaker target as mlfn deploys it: model, endpoint config for inference components, endpoint, inference
    component scaling to zero, its alarm, and an HTTP API with an IAM route in front."""
    return {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                               "Action": "sts:AssumeRole"}]}}},
            "Model": {"Type": "AWS::SageMaker::Model", "Properties": {
                "ExecutionRoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                "PrimaryContainer": {"Image": image_uri, "Environment": {"MLFN_MODEL_DIR": "/opt/mlfn/model"}}}},
            "Config": {"Type": "AWS::SageMaker::EndpointConfig", "Properties": {
                "ExecutionRoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                "ProductionVariants": [{
                    "VariantName": "AllTraffic", "InstanceType": instance_type, "InitialInstanceCount": 1,
                    "ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 2},
                    "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}}]}},
            "Endpoint": {"Type": "AWS::SageMaker::Endpoint", "Properties": {
                "EndpointConfigName": {"Fn::GetAtt": ["Config", "EndpointConfigName"]}}},
            "Component": {"Type": "AWS::SageMaker::InferenceComponent", "Properties": {
                "EndpointName": {"Fn::GetAtt": ["Endpoint", "EndpointName"]}, "VariantName": "AllTraffic",
                "Specification": {"ModelName": {"Fn::GetAtt": ["Model", "ModelName"]},
                                  "ComputeResourceRequirements": {"NumberOfCpuCoresRequired": 1,
                                                                  "MinMemoryRequiredInMb": 1024}},
                "RuntimeConfig": {"CopyCount": 1}}},
            "Copies": {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": {
                "ServiceNamespace": "sagemaker", "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
                "ResourceId": {"Fn::Join": ["", ["inference-component/",
                                                 {"Fn::GetAtt": ["Component", "InferenceComponentName"]}]]},
                "MinCapacity": 0, "MaxCapacity": 2}},
            "ScaleOutFromZero": {"Type": "AWS::ApplicationAutoScaling::ScalingPolicy", "Properties": {
                "PolicyName": "from-zero", "PolicyType": "StepScaling", "ScalingTargetId": {"Ref": "Copies"},
                "StepScalingPolicyConfiguration": {"AdjustmentType": "ChangeInCapacity", "Cooldown": 60,
                                                   "StepAdjustments": [{"MetricIntervalLowerBound": 0,
                                                                        "ScalingAdjustment": 1}]}}},
            "NoCapacity": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
                "ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1, "Threshold": 0,
                "MetricName": "NoCapacityInvocationFailures", "Namespace": "AWS/SageMaker", "Period": 60,
                "Statistic": "Maximum", "AlarmActions": [{"Ref": "ScaleOutFromZero"}]}},
            "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"Name": "mlfn-api", "ProtocolType": "HTTP"}},
            "Integration": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
                "ApiId": {"Ref": "Api"}, "IntegrationType": "AWS_PROXY", "IntegrationSubtype": "SageMaker-Invoke",
                "PayloadFormatVersion": "1.0"}},
            "Route": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
                "ApiId": {"Ref": "Api"}, "RouteKey": "POST /invocations", "AuthorizationType": "AWS_IAM",
                "Target": {"Fn::Join": ["", ["integrations/", {"Ref": "Integration"}]]}}},
            "Stage": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {
                "ApiId": {"Ref": "Api"}, "StageName": "$default", "AutoDeploy": True}},
        },
        "Outputs": {
            "InvokeUrl": {"Value": {"Fn::GetAtt": ["Api", "ApiEndpoint"]}},
            "EndpointName": {"Value": {"Fn::GetAtt": ["Endpoint", "EndpointName"]}},
            "InferenceComponentName": {"Value": {"Fn::GetAtt": ["Component", "InferenceComponentName"]}},
            "Target": {"Value": "sagemaker"},
        },
    }


@pytest.fixture()
def make_lambda_template(image_uri: str) -> Callable[..., dict[str, Any]]:
    return lambda **kw: copy.deepcopy(lambda_template(image_uri, **kw))


@pytest.fixture()
def make_sagemaker_template(image_uri: str) -> Callable[..., dict[str, Any]]:
    return lambda **kw: copy.deepcopy(sagemaker_template(image_uri, **kw))
