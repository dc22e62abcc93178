"""The ECS GPU target: capacity provider at 0, GPU task, service at 0, scale from zero on traffic, IAM front."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match

from .conftest import IMAGE_URI, Synthesized


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_gpu_instances_start_at_zero_on_the_gpu_ami(synthesized: Synthesized) -> None:
    t = synthesized.template("ecs-gpu")
    t.has_resource_properties("AWS::AutoScaling::AutoScalingGroup", {"MinSize": "0", "MaxSize": "3",
                                                                     "NewInstancesProtectedFromScaleIn": True})
    t.has_resource_properties("AWS::EC2::LaunchTemplate", {"LaunchTemplateData": Match.object_like({
        "InstanceType": "g5.xlarge",
        "MetadataOptions": {"HttpTokens": "required"},
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": Match.object_like({"Encrypted": True})}],
    })})
    params = synthesized.templates["ecs-gpu"]["Parameters"]
    assert any(p.get("Default") == "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
               for p in params.values())
    t.has_resource_properties("AWS::ECS::CapacityProvider", {"AutoScalingGroupProvider": Match.object_like({
        "ManagedScaling": {"Status": "ENABLED", "TargetCapacity": 100},
        "ManagedTerminationProtection": "ENABLED",
    })})


def test_task_requests_gpus_and_service_count_belongs_to_autoscaling(synthesized: Synthesized) -> None:
    t = synthesized.template("ecs-gpu")
    t.has_resource_properties("AWS::ECS::TaskDefinition", {
        "RequiresCompatibilities": ["EC2"],
        "ContainerDefinitions": [Match.object_like({
            "ResourceRequirements": [{"Type": "GPU", "Value": "1"}],
            "Cpu": 2048,
            "Memory": 8192,
            "PortMappings": [Match.object_like({"ContainerPort": 8080})],
            "Environment": Match.array_with([{"Name": "MLFN_MODEL_DIR", "Value": "/opt/mlfn/model"}]),
        })],
    })
    t.has_resource_properties("AWS::ECS::Service", {
        "DesiredCount": Match.absent(),  # an update must not reset the count autoscaling set (see ecs_model)
        "CapacityProviderStrategy": [{"CapacityProvider": Match.any_value(), "Weight": 1}],
    })


def test_task_count_scales_with_requests_from_the_configured_minimum(synthesized: Synthesized) -> None:
    t = synthesized.template("ecs-gpu")
    t.has_resource_properties("AWS::ApplicationAutoScaling::ScalableTarget", {
        "ServiceNamespace": "ecs", "ScalableDimension": "ecs:service:DesiredCount", "MinCapacity": 0,
        "MaxCapacity": 3,
    })
    t.has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": Match.object_like({
            "TargetValue": 50,
            "PredefinedMetricSpecification": Match.object_like({"PredefinedMetricType": "ALBRequestCountPerTarget"}),
        }),
    })


def _step(template: dict[str, Any], adjustment_type: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    policies = _resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    (pid, policy), = ((k, v) for k, v in policies.items()
                      if v["Properties"].get("StepScalingPolicyConfiguration", {}).get("AdjustmentType")
                      == adjustment_type)
    (alarm,) = (a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values()
                if a["Properties"].get("AlarmActions") == [{"Ref": pid}])
    return pid, policy["Properties"]["StepScalingPolicyConfiguration"], alarm


def test_traffic_at_zero_tasks_adds_a_task(synthesized: Synthesized) -> None:
    _, config, alarm = _step(synthesized.templates["ecs-gpu"], "ChangeInCapacity")
    assert config["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    assert alarm["Namespace"] == "AWS/ApplicationELB" and alarm["MetricName"] == "HTTPCode_ELB_503_Count"
    assert alarm["Threshold"] == 1


def test_idle_service_scales_to_zero(synthesized: Synthesized) -> None:
    _, config, alarm = _step(synthesized.templates["ecs-gpu"], "ExactCapacity")
    assert config["StepAdjustments"] == [{"MetricIntervalUpperBound": 0, "ScalingAdjustment": 0}]
    assert alarm["EvaluationPeriods"] == 20 and alarm["DatapointsToAlarm"] == 20
    assert alarm["TreatMissingData"] == "breaching"
    (query,) = (m for m in alarm["Metrics"] if "Expression" in m)
    assert query["Expression"] == "FILL(requests, 0)"


def test_http_api_requires_iam_and_reaches_an_internal_alb(synthesized: Synthesized) -> None:
    t = synthesized.template("ecs-gpu")
    t.has_resource_properties("AWS::ApiGatewayV2::Route", {"RouteKey": "$default", "AuthorizationType": "AWS_IAM"})
    t.has_resource_properties("AWS::ApiGatewayV2::Integration", {"ConnectionType": "VPC_LINK",
                                                                 "IntegrationType": "HTTP_PROXY"})
    t.has_resource_properties("AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internal"})
    t.has_resource_properties("AWS::ApiGatewayV2::Stage", {"AccessLogSettings": Match.object_like({
        "DestinationArn": Match.any_value()})})
    outputs = synthesized.templates["ecs-gpu"]["Outputs"]
    assert set(outputs) == {"InvokeUrl", "AuthType", "Target", "ClusterName", "ServiceName", "InvokerPolicy"}


def test_network_needs_no_nat_and_no_lookups(synthesized: Synthesized) -> None:
    t = synthesized.template("ecs-gpu")
    t.resource_count_is("AWS::EC2::NatGateway", 0)
    t.all_resources_properties("AWS::EC2::Subnet", {"AvailabilityZone": {"Fn::Select": [Match.any_value(),
                                                                                       {"Fn::GetAZs": ""}]}})
    # Nothing may reach the instances but the ALB, and only on the ephemeral host ports of bridge networking.
    for ingress in _resources(synthesized.templates["ecs-gpu"], "AWS::EC2::SecurityGroupIngress").values():
        assert "SourceSecurityGroupId" in ingress["Properties"] and "CidrIp" not in ingress["Properties"]


def test_image_uri_is_used_as_given(synthesized: Synthesized) -> None:
    container = next(iter(_resources(synthesized.templates["ecs-gpu+uri"], "AWS::ECS::TaskDefinition").values()))
    image = container["Properties"]["ContainerDefinitions"][0]["Image"]
    assert "mlfn/iris@sha256:" + "ab" * 32 in str(image) or IMAGE_URI in str(image)
