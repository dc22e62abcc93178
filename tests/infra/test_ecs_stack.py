"""The ECS GPU target: capacity provider at 0, GPU task, service at 0, scale from zero on traffic, IAM front."""

from __future__ import annotations

import math
from typing import Any

from aws_cdk.assertions import Match

from .conftest import IMAGE_URI, Synthesized


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_gpu_instances_start_at_zero_on_the_gpu_ami(synthesized: Synthesized) -> None:
    t = synthesized.template("ecs-gpu")
    t.has_resource_properties("AWS::AutoScaling::AutoScalingGroup", {"MinSize": "0",
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


def _step(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The step policy whose logical id contains `name`, and the alarm whose action it is."""
    policies = _resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    (pid, policy), = ((k, v) for k, v in policies.items()
                      if name in k and v["Properties"]["PolicyType"] == "StepScaling")
    (alarm,) = (a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values()
                if a["Properties"].get("AlarmActions") == [{"Ref": pid}])
    return pid, policy["Properties"]["StepScalingPolicyConfiguration"], alarm


def test_traffic_at_zero_tasks_sets_exactly_one_task(synthesized: Synthesized) -> None:
    # The 503s go on while the first GPU task boots (minutes), and a step action runs again every period while
    # its alarm stays in ALARM: +1 would add a task per minute up to max_tasks; ExactCapacity asks for one.
    _, config, alarm = _step(synthesized.templates["ecs-gpu"], "ScaleOutFromZero")
    assert config["AdjustmentType"] == "ExactCapacity"
    assert config["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    assert alarm["Namespace"] == "AWS/ApplicationELB" and alarm["MetricName"] == "HTTPCode_ELB_503_Count"
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"


def test_idle_signal_counts_requests_at_the_front_also_at_zero_tasks(synthesized: Synthesized) -> None:
    # The ALB's RequestCount is not reported without registered targets: at zero tasks the idle alarm would stay
    # in ALARM (missing data is breaching) and set 0 again every minute. The HTTP API counts every request.
    template = synthesized.templates["ecs-gpu"]
    _, config, alarm = _step(template, "ScaleInWhenIdle")
    assert config["AdjustmentType"] == "ExactCapacity"
    assert config["StepAdjustments"] == [{"MetricIntervalUpperBound": 0, "ScalingAdjustment": 0}]
    assert alarm["Namespace"] == "AWS/ApiGateway" and alarm["MetricName"] == "Count"
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 60
    (api,) = _resources(template, "AWS::ApiGatewayV2::Api")
    assert alarm["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": api}}]
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["Threshold"] == 1
    assert alarm["EvaluationPeriods"] == 20 and alarm["DatapointsToAlarm"] == 20
    assert alarm["TreatMissingData"] == "breaching"
    assert "Metrics" not in alarm  # one metric: the emulator's alarm evaluator runs exactly this alarm


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


def test_instances_cover_a_rollout_at_full_scale(synthesized: Synthesized) -> None:
    # At max_tasks a new task definition rolls out with up to MaximumPercent of the tasks RUNNING or PENDING while
    # MinimumHealthyPercent of them must stay RUNNING: the group must be allowed to hold them all, or the new
    # tasks wait for instances it may not launch while the old ones may not stop (the rollout hangs).
    template = synthesized.templates["ecs-gpu"]
    (service,) = _resources(template, "AWS::ECS::Service").values()
    deployment = service["Properties"]["DeploymentConfiguration"]
    (group,) = _resources(template, "AWS::AutoScaling::AutoScalingGroup").values()
    max_tasks, tasks_per_instance = 3, 1  # ecs-gpu: one 1-GPU task per g5.xlarge
    during_rollout = max(max_tasks * deployment["MaximumPercent"] // 100,
                         math.ceil(max_tasks * deployment["MinimumHealthyPercent"] / 100) + 1)
    assert int(group["Properties"]["MaxSize"]) * tasks_per_instance >= during_rollout


def test_service_waits_for_the_capacity_provider_association(synthesized: Synthesized) -> None:
    # A service created before its cluster's capacity-provider association may fail, and deleting the
    # association while the service still uses the provider fails "in use" (aws/containers-roadmap#631).
    template = synthesized.templates["ecs-gpu"]
    (association,) = _resources(template, "AWS::ECS::ClusterCapacityProviderAssociations")
    (service,) = _resources(template, "AWS::ECS::Service").values()
    depends = service.get("DependsOn", [])
    assert association in ([depends] if isinstance(depends, str) else depends)
