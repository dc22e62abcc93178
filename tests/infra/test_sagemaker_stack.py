"""The SageMaker target: inference component that scales to zero, serverless variant, the IAM-guarded REST front."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match

from mlfn.infra.fronts import NO_CAPACITY_TEMPLATE

from .conftest import IMAGE_URI, Synthesized


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_endpoint_config_lets_instances_scale_to_zero(synthesized: Synthesized) -> None:
    synthesized.template("sm-gpu").has_resource_properties("AWS::SageMaker::EndpointConfig", {
        "ExecutionRoleArn": Match.any_value(),
        "ProductionVariants": [{
            "VariantName": "AllTraffic",
            "InstanceType": "ml.g5.xlarge",
            "InitialInstanceCount": 1,
            "ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 2},
            "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
        }],
    })


def test_inference_component_reserves_a_gpu_per_copy(synthesized: Synthesized) -> None:
    synthesized.template("sm-gpu").has_resource_properties("AWS::SageMaker::InferenceComponent", {
        "InferenceComponentName": "mlfn-sm-gpu-dev-ic",
        "VariantName": "AllTraffic",
        "Specification": {"ComputeResourceRequirements": {
            "NumberOfAcceleratorDevicesRequired": 1, "NumberOfCpuCoresRequired": 1, "MinMemoryRequiredInMb": 1024,
        }},
        "RuntimeConfig": {"CopyCount": 1},
    })
    synthesized.template("sm-gpu").has_resource_properties("AWS::SageMaker::Model", {
        "EnableNetworkIsolation": True,
        "PrimaryContainer": {"Environment": {"MLFN_MODEL_DIR": "/opt/mlfn/model"}},
    })


def test_copy_count_scales_from_the_configured_minimum(synthesized: Synthesized) -> None:
    t = synthesized.template("sm-gpu")
    t.has_resource_properties("AWS::ApplicationAutoScaling::ScalableTarget", {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "inference-component/mlfn-sm-gpu-dev-ic",
        "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
        "MinCapacity": 0,
        "MaxCapacity": 3,
        "RoleARN": {"Fn::Join": ["", Match.array_with([Match.string_like_regexp(
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint")])]},
    })
    t.has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 30,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerInferenceComponentInvocationsPerCopy"},
        },
    })


def test_no_capacity_alarm_drives_a_step_policy_out_of_zero(synthesized: Synthesized) -> None:
    template = synthesized.templates["sm-gpu"]
    steps = {k: v for k, v in _resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").items()
             if v["Properties"]["PolicyType"] == "StepScaling"}
    assert len(steps) == 1
    (step_id, step), = steps.items()
    config = step["Properties"]["StepScalingPolicyConfiguration"]
    # Application Auto Scaling runs the action again every minute while the alarm stays in ALARM, and a copy takes
    # minutes to start: ChangeInCapacity +1 would add a copy per minute; ExactCapacity 1 asks for one each time.
    assert config["AdjustmentType"] == "ExactCapacity"
    assert config["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    alarms = [a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("AlarmActions") == [{"Ref": step_id}]]
    assert len(alarms) == 1
    alarm = alarms[0]
    assert alarm["MetricName"] == "NoCapacityInvocationFailures"
    assert alarm["Namespace"] == "AWS/SageMaker"
    assert alarm["Dimensions"] == [{"Name": "InferenceComponentName", "Value": "mlfn-sm-gpu-dev-ic"}]
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_rest_front_requires_iam_and_invokes_only_this_endpoint(synthesized: Synthesized) -> None:
    t = synthesized.template("sm-gpu")
    t.resource_count_is("AWS::ApiGateway::Method", 2)
    t.all_resources_properties("AWS::ApiGateway::Method", {
        "HttpMethod": "POST",
        "AuthorizationType": "AWS_IAM",
        "Integration": {
            "Type": "AWS",
            "IntegrationHttpMethod": "POST",
            "Uri": {"Fn::Join": ["", Match.array_with([Match.string_like_regexp(
                "runtime.sagemaker:path/endpoints/mlfn-sm-gpu-dev/invocations")])]},
            "RequestParameters": Match.object_like({
                "integration.request.header.X-Amzn-SageMaker-Inference-Component": "'mlfn-sm-gpu-dev-ic'",
            }),
        },
    })
    t.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": [{
        "Action": "sagemaker:InvokeEndpoint",
        "Effect": "Allow",
        "Resource": {"Fn::Join": ["", Match.array_with([Match.string_like_regexp(":endpoint/mlfn-sm-gpu-dev$")])]},
    }]}})
    outputs = synthesized.templates["sm-gpu"]["Outputs"]
    assert set(outputs) == {"InvokeUrl", "AuthType", "Target", "EndpointName", "InferenceComponentName",
                            "InvokerPolicy"}
    assert outputs["AuthType"]["Value"] == "AWS_IAM"
    assert outputs["EndpointName"]["Value"] == "mlfn-sm-gpu-dev"


def test_no_capacity_answers_503_with_retry_after(synthesized: Synthesized) -> None:
    method = next(iter(_resources(synthesized.templates["sm-gpu"], "AWS::ApiGateway::Method").values()))
    responses = method["Properties"]["Integration"]["IntegrationResponses"]
    busy = [r for r in responses if r["StatusCode"] == "503"]
    assert busy and busy[0]["ResponseParameters"]["method.response.header.Retry-After"] == "'60'"
    assert {r.get("SelectionPattern") for r in responses} >= {"424", "429", "503"}


def test_zero_copies_400_becomes_503_with_retry_after(synthesized: Synthesized) -> None:
    """At zero copies InvokeEndpoint answers 400 ValidationError; only the body tells, so the 4xx response's template
    reads it (as text: every type is binary on this API) and overrides the status to 503 with Retry-After."""
    method = next(iter(_resources(synthesized.templates["sm-gpu"], "AWS::ApiGateway::Method").values()))
    responses = method["Properties"]["Integration"]["IntegrationResponses"]
    client_error = next(r for r in responses if r["StatusCode"] == "400")
    assert client_error["ContentHandling"] == "CONVERT_TO_TEXT"
    template = client_error["ResponseTemplates"]["application/json"]
    assert "$util.base64Decode($input.body)" in template
    assert 'contains("Inference Component has no capacity to process this request")' in template
    assert "#set($context.responseOverride.status = 503)" in template
    assert '#set($context.responseOverride.header.Retry-After = "60")' in template
    declared = {r["StatusCode"]: r.get("ResponseParameters", {}) for r in method["Properties"]["MethodResponses"]}
    assert declared["400"]["method.response.header.Retry-After"] is True
    serverless = _resources(synthesized.templates["sm-serverless"], "AWS::ApiGateway::Method")
    for resource in serverless.values():  # no component, no zero copies: the 4xx answer passes through untouched
        assert all("ResponseTemplates" not in r for r in resource["Properties"]["Integration"]["IntegrationResponses"])


def test_zero_copies_template_applies_for_every_accept_type_the_front_answers(synthesized: Synthesized) -> None:
    """API Gateway picks the response template by the request's Accept type; a caller asking for CSV, NumPy, raw
    text or bytes at zero copies must get the 503 too, not the 400 as base64 text (CONVERT_TO_TEXT, no template)."""
    for method in _resources(synthesized.templates["sm-gpu"], "AWS::ApiGateway::Method").values():
        responses = method["Properties"]["Integration"]["IntegrationResponses"]
        templates = next(r for r in responses if r["StatusCode"] == "400")["ResponseTemplates"]
        for accept in ("application/json", "text/csv", "application/x-npy", "text/plain", "application/octet-stream"):
            assert templates.get(accept) == NO_CAPACITY_TEMPLATE, accept


def test_serverless_endpoint_has_no_component_or_scaling(synthesized: Synthesized) -> None:
    t = synthesized.template("sm-serverless")
    t.has_resource_properties("AWS::SageMaker::EndpointConfig", {"ProductionVariants": [{
        "VariantName": "AllTraffic",
        "ModelName": Match.any_value(),
        "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 8},
    }]})
    t.resource_count_is("AWS::SageMaker::InferenceComponent", 0)
    t.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    t.all_resources_properties("AWS::ApiGateway::Method", {"Integration": {"RequestParameters": Match.object_like({
        "integration.request.header.X-Amzn-SageMaker-Inference-Component": Match.absent()})}})
    assert "InferenceComponentName" not in synthesized.templates["sm-serverless"]["Outputs"]


def test_image_uri_is_pulled_from_its_own_repository_only(synthesized: Synthesized) -> None:
    t = synthesized.template("sm-gpu+uri")
    t.has_resource_properties("AWS::SageMaker::Model", {"PrimaryContainer": {"Image": IMAGE_URI}})
    t.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": Match.array_with([{
        "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        "Effect": "Allow",
        "Resource": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"},
                                       ":ecr:us-east-1:123456789012:repository/mlfn/iris"]]},
    }])}})


def test_logs_keep_their_retention(synthesized: Synthesized) -> None:
    t = synthesized.template("sm-gpu")
    t.has_resource_properties("AWS::Logs::LogGroup", {"LogGroupName": "/aws/sagemaker/Endpoints/mlfn-sm-gpu-dev",
                                                      "RetentionInDays": 30})
    t.has_resource_properties("AWS::Logs::LogGroup", {
        "LogGroupName": "/aws/sagemaker/InferenceComponents/mlfn-sm-gpu-dev-ic", "RetentionInDays": 30})
    for metric in ("Invocation5XXErrors", "NoCapacityInvocationFailures", "ModelLatency"):
        t.has_resource_properties("AWS::CloudWatch::Alarm", {"Namespace": "AWS/SageMaker", "MetricName": metric})
    t.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_serverless_model_runs_without_network_isolation(synthesized: Synthesized) -> None:
    # Serverless Inference lists network isolation among its feature exclusions; instance endpoints keep it.
    for key in ("sm-serverless", "user"):
        models = _resources(synthesized.templates[key], "AWS::SageMaker::Model")
        assert models and all(m["Properties"].get("EnableNetworkIsolation") in (None, False) for m in models.values())
    synthesized.template("sm-gpu").has_resource_properties("AWS::SageMaker::Model", {"EnableNetworkIsolation": True})


def test_log_groups_are_kept_except_when_their_first_create_rolls_back(synthesized: Synthesized) -> None:
    # The endpoint's groups have fixed names: a Retain group left by a rolled-back first create (say an ml.g5
    # quota of 0) would make the next create of the same name fail "already exists".
    for key, template in synthesized.templates.items():
        for logical_id, group in _resources(template, "AWS::Logs::LogGroup").items():
            assert group.get("DeletionPolicy") == "RetainExceptOnCreate", (key, logical_id)
            assert group.get("UpdateReplacePolicy") == "Retain", (key, logical_id)
