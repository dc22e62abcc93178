"""`MlfnEcsGpuModel`: a GPU service on ECS that scales to zero tasks and zero instances.

A VPC with public subnets only (no NAT gateway: instances pull images and reach ECS through the internet gateway
with public addresses, and accept traffic only from the load balancer), a cluster whose capacity provider is an
Auto Scaling group of GPU instances on the ECS GPU-optimized AMI (minimum 0), an EC2 task definition requesting
GPUs, a service under task autoscaling (`min_tasks`..`max_tasks`), an internal ALB, and an HTTP API with IAM
auth in front (VPC link).

Scaling: target tracking on ALB requests per task; from zero, a step policy on the ALB's own 503s (which it
answers only while no task is registered) sets exactly one task, and the capacity provider starts an instance for
it; after `idle_minutes` without a request reaching the HTTP API (its `Count`, which counts requests also while no
task serves), a step policy sets the task count to 0 and the group drains to 0.

`[rollout]` canary/linear: ECS's own CANARY/LINEAR deployment strategy (`infra/rollout.py` `EcsTrafficShift`):
two target groups behind a production listener rule whose weights ECS shifts, the rollout alarms as deployment
alarms with rollback. ECS picks the target group of the new revision at deploy time, so what must follow the
serving tasks reads the load balancer as a whole (the scale-out-from-zero 503s, the dashboard, the 5xx count and
p99 alarms, the requests-per-task target tracking: metric math, not ALBRequestCountPerTarget, which names one
group) or both groups (one 5xx-rate alarm per group).
"""

from __future__ import annotations

import math
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from mlfn.runtime.spec import ModelSpec

from .base import MlfnModel
from .checks import ECS_RESERVED_MIB
from .fronts import AlbHttpFront
from .image import MODEL_DIR_IN_IMAGE, asset_options
from .instance_types import ECS_GPU_TYPES
from .monitoring import ModelMetrics, ModelMonitoring, p99_metric, retained_log_group, sum_metric
from .nag import acknowledge
from .rollout import (
    EcsTrafficShift,
    ecs_deployment_options,
    latency_threshold,
    requests_per_task_tracking,
    rollout_alarms,
)
from .scaling import ECR_TOKEN_REASON, scale_in_when_idle, scale_out_from_zero, service_linked_scaling_role

CONTAINER_NAME = "model"
CONTAINER_PORT = 8080
ROOT_VOLUME_GIB = 100  # the GPU runtime image (CUDA + onnxruntime-gpu) is several GB
LATENCY_ALARM_SECONDS = 10.0
# Rolling update: new tasks start before old ones stop (no capacity is lost while a new version rolls out).
MIN_HEALTHY_PERCENT = 100
MAX_PERCENT = 200


def tasks_per_instance(spec: ModelSpec) -> int:
    e = spec.settings.ecs
    itype = ECS_GPU_TYPES[e.instance_type]
    return int(max(1, min(itype.gpus // e.gpus, itype.vcpus * 1024 // e.cpu,
                          (itype.memory_mib - ECS_RESERVED_MIB) // e.memory_mb)))


def max_instances(spec: ModelSpec) -> int:
    """The group's maximum: room for MAX_PERCENT of `max_tasks`, what a rolling update at full scale runs at once.

    With room for `max_tasks` only, the new tasks of a redeploy at full scale would wait for instances the group
    may not launch (managed scaling never raises its maximum) while no old task may stop: the rollout would hang.
    The extra instances exist only during such a rollout.
    """
    return math.ceil(spec.settings.ecs.max_tasks * MAX_PERCENT // 100 / tasks_per_instance(spec))


@jsii.implements(cdk.IAspect)
class ServiceAfterCapacityProviders:
    """Make `service` depend on its cluster's capacity-provider association, which CDK adds only at synth.

    Without it CloudFormation may create the service before the association (the create can fail) and delete the
    association while the service still uses the provider ("The specified capacity provider is in use",
    aws/containers-roadmap#631).
    """

    def __init__(self, cluster: ecs.Cluster, service: ecs.BaseService) -> None:
        self.cluster, self.service = cluster, service

    def visit(self, node: IConstruct) -> None:
        if node.node.path != self.service.node.path:
            return
        for child in self.cluster.node.children:
            if isinstance(child, ecs.CfnClusterCapacityProviderAssociations):
                self.service.node.add_dependency(child)


class MlfnEcsGpuModel(MlfnModel):
    """One model as an ECS service on GPU instances, scaled to zero when idle, behind an HTTPS URL."""

    TARGET = "ecs"

    def _build(self) -> None:
        s = self.spec.settings
        e = s.ecs
        title = f"mlfn {self.spec.name}"

        self.vpc = ec2.Vpc(
            self, "Vpc", max_azs=2, nat_gateways=0, restrict_default_security_group=False,
            subnet_configuration=[ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC,
                                                          cidr_mask=24)],
        )
        flow_logs = retained_log_group(self, "FlowLogs", s.logs.retention_days)
        self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                              traffic_type=ec2.FlowLogTrafficType.REJECT)
        self.cluster = ecs.Cluster(self, "Cluster", vpc=self.vpc,
                                   container_insights_v2=ecs.ContainerInsights.ENABLED)

        instances = max_instances(self.spec)
        self.instances = autoscaling.AutoScalingGroup(
            self, "GpuInstances",
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            associate_public_ip_address=True,
            instance_type=ec2.InstanceType(e.instance_type),
            machine_image=ecs.EcsOptimizedImage.amazon_linux2023(ecs.AmiHardwareType.GPU),
            min_capacity=0,
            max_capacity=instances,
            require_imdsv2=True,
            block_devices=[autoscaling.BlockDevice(
                device_name="/dev/xvda",
                volume=autoscaling.BlockDeviceVolume.ebs(ROOT_VOLUME_GIB, encrypted=True,
                                                         volume_type=autoscaling.EbsDeviceVolumeType.GP3),
            )],
        )
        self.capacity = ecs.AsgCapacityProvider(self, "Capacity", auto_scaling_group=self.instances,
                                                enable_managed_termination_protection=True,
                                                target_capacity_percent=100)
        self.cluster.add_asg_capacity_provider(self.capacity)
        self.log_group = retained_log_group(self, "Logs", s.logs.retention_days)
        self._narrow_instance_policy()

        self.task_definition = ecs.Ec2TaskDefinition(self, "Task", network_mode=ecs.NetworkMode.BRIDGE)
        self.task_definition.add_container(
            CONTAINER_NAME,
            image=self._image(),
            cpu=e.cpu,
            memory_limit_mib=e.memory_mb,
            gpu_count=e.gpus,
            environment={"MLFN_MODEL_DIR": MODEL_DIR_IN_IMAGE, "MLFN_PORT": str(CONTAINER_PORT)},
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix=self.spec.name, log_group=self.log_group),
        )
        self.service = ecs.Ec2Service(
            self, "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            # No DesiredCount in the template: CloudFormation would reset the running count to it on every
            # update (an outage while scaled out). A new service starts one task (proving the image serves on
            # the GPU instance), autoscaling then holds min_tasks..max_tasks and the idle policy takes it to 0.
            desired_count=None,
            capacity_provider_strategies=[ecs.CapacityProviderStrategy(
                capacity_provider=self.capacity.capacity_provider_name, weight=1)],
            **self._deployment_options(),
            min_healthy_percent=MIN_HEALTHY_PERCENT,
            max_healthy_percent=MAX_PERCENT,
            health_check_grace_period=cdk.Duration.minutes(5),
        )
        cdk.Aspects.of(self).add(ServiceAfterCapacityProviders(self.cluster, self.service))

        alb_sg = ec2.SecurityGroup(self, "AlbSg", vpc=self.vpc, allow_all_outbound=False,
                                   description=f"{title}: internal ALB, reachable from the API VPC link only")
        self.alb = elbv2.ApplicationLoadBalancer(self, "Alb", vpc=self.vpc, internet_facing=False,
                                                 security_group=alb_sg, drop_invalid_header_fields=True,
                                                 vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC))
        self.listener = self.alb.add_listener("Http", port=80, open=False)
        # Bridge networking maps the container port to an ephemeral host port: let the ALB reach that range only.
        self.instances.connections.allow_from(alb_sg, ec2.Port.tcp_range(32768, 65535), "ALB to the model tasks")
        self.target_group = self._target_group("ModelGroup")  # the id (under the listener) it has always had
        self.listener.add_target_groups("Default", target_groups=[self.target_group])
        self.traffic_shift: EcsTrafficShift | None = None
        alternate = None
        if self.spec.settings.rollout.strategy != "all_at_once":
            self.traffic_shift = EcsTrafficShift(
                self, "TrafficShift", listener=self.listener, primary=self.target_group,
                alternate=self._target_group("AlternateGroup"), description=title)
            alternate = self.traffic_shift.alternate_target()
            # ECS checks that both groups belong to the load balancer when it creates the service.
            self.service.node.add_dependency(self.traffic_shift.rule)
            cdk.Annotations.of(self.service).acknowledge_warning(
                "@aws-cdk/aws-ecs:shouldUseCircuitBreaker",
                "The circuit breaker applies to rolling updates only; the deployment alarms roll canary/linear back.")
        self.service.load_balancer_target(container_name=CONTAINER_NAME, container_port=CONTAINER_PORT,
                                          alternate_target=alternate).attach_to_application_target_group(
            self.target_group)
        self.front = AlbHttpFront(self, "Front", vpc=self.vpc, listener=self.listener, alb_security_group=alb_sg,
                                  log_retention_days=s.logs.retention_days, description=f"{title} (ECS)")
        self.invoke_url = self.front.url
        self.auth_type = "AWS_IAM"

        self.scalable_target = self._autoscaling()
        self.monitoring = ModelMonitoring(self, "Monitoring", title=title, metrics=self._metrics())
        self._rollout_alarms()
        self._acknowledge()

    def _deployment_options(self) -> dict[str, Any]:
        """all_at_once: a rolling update whose circuit breaker rolls back a deployment whose tasks fail;
        canary/linear: ECS's CANARY/LINEAR strategy (`ecs_deployment_options`)."""
        rollout = self.spec.settings.rollout
        if rollout.strategy == "all_at_once":
            return {"circuit_breaker": ecs.DeploymentCircuitBreaker(rollback=True)}
        return ecs_deployment_options(rollout)

    def _target_group(self, id: str) -> elbv2.ApplicationTargetGroup:
        """A target group for the service's tasks (instance targets: bridge networking maps ephemeral host ports)."""
        return elbv2.ApplicationTargetGroup(
            self.listener, id, vpc=self.vpc, port=CONTAINER_PORT, protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.INSTANCE,
            health_check=elbv2.HealthCheck(path="/ping", port="traffic-port", interval=cdk.Duration.seconds(15),
                                           healthy_threshold_count=2),
            deregistration_delay=cdk.Duration.seconds(30),
        )

    def _rollout_alarms(self) -> None:
        """canary/linear: the rollout alarms as the service's deployment alarms with rollback. ECS decides at each
        deployment which target group takes the new revision, so every alarm covers both: the 5xx count and p99 read
        the whole ALB, and the 5xx rate has one alarm per target group (the new revision's rate, not diluted by the
        old revision's traffic, whichever group it is in)."""
        rollout = self.spec.settings.rollout
        self.rollout_alarms: list[cw.Alarm] = []
        if self.traffic_shift is None:
            return
        dims = {"LoadBalancer": self.alb.load_balancer_full_name}
        rates = {}
        for name, group in (("Primary", self.traffic_shift.primary), ("Alternate", self.traffic_shift.alternate)):
            per_group = {**dims, "TargetGroup": group.target_group_full_name}
            rates[name] = (sum_metric("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", per_group),
                           sum_metric("AWS/ApplicationELB", "RequestCount", per_group))
        self.rollout_alarms = rollout_alarms(
            self, rollout, errors=sum_metric("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", dims),
            requests=sum_metric("AWS/ApplicationELB", "RequestCount", dims),
            latency_p99=p99_metric("AWS/ApplicationELB", "TargetResponseTime", dims),
            latency_threshold=latency_threshold(rollout, LATENCY_ALARM_SECONDS, 0.001), rates=rates)
        self.service.enable_deployment_alarms([a.alarm_name for a in self.rollout_alarms],
                                              behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM)

    def _narrow_instance_policy(self) -> None:
        """Replace the ECS agent's policy CDK writes (`ecs:Submit*`, logs on `*`) with exact actions and resources.

        The agent registers with this cluster, reports task and container state, and polls for work; it
        writes only this model's logs. AWS offers no resource scope for DiscoverPollEndpoint and
        GetAuthorizationToken, and Poll/StartTelemetrySession act on container instances whose IDs exist
        only at run time, so those are limited by the `ecs:cluster` condition instead.
        """
        policy = self.instances.role.node.try_find_child("DefaultPolicy")
        assert policy is not None
        cfn = policy.node.default_child
        assert isinstance(cfn, iam.CfnPolicy)
        cluster_arn = self.cluster.cluster_arn
        statements = [
            iam.PolicyStatement(actions=["ecs:DeregisterContainerInstance", "ecs:RegisterContainerInstance",
                                         "ecs:SubmitAttachmentStateChanges", "ecs:SubmitContainerStateChange",
                                         "ecs:SubmitTaskStateChange"], resources=[cluster_arn]),
            iam.PolicyStatement(actions=["ecs:Poll", "ecs:StartTelemetrySession"], resources=["*"],
                                conditions={"ArnEquals": {"ecs:cluster": cluster_arn}}),
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken", "ecs:DiscoverPollEndpoint"], resources=["*"]),
            iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                resources=[self.log_group.log_group_arn]),
        ]
        cfn.policy_document = iam.PolicyDocument(statements=statements)
        acknowledge(policy, {"IAM5[Resource::*]": "ecs:DiscoverPollEndpoint and ecr:GetAuthorizationToken take no "
                             "resource scope; ecs:Poll and ecs:StartTelemetrySession act on container instances "
                             "known only at run time and are held to this cluster by the ecs:cluster condition."})

    def _image(self) -> ecs.ContainerImage:
        if self.image is not None:
            repository = self._repository()
            return ecs.ContainerImage.from_ecr_repository(repository, self.image.reference)
        from aws_cdk.aws_ecr_assets import DockerImageAsset, Platform

        asset = DockerImageAsset(self, "Image", **asset_options(self, self.spec, self.TARGET, Platform.LINUX_AMD64))
        return ecs.ContainerImage.from_docker_image_asset(asset)

    def _alb_metric(self, name: str, statistic: str = "Sum") -> cw.Metric:
        return cw.Metric(namespace="AWS/ApplicationELB", metric_name=name, statistic=statistic,
                         period=cdk.Duration.minutes(1),
                         dimensions_map={"LoadBalancer": self.alb.load_balancer_full_name})

    def _autoscaling(self) -> appscaling.ScalableTarget:
        e = self.spec.settings.ecs
        target = appscaling.ScalableTarget(
            self, "TaskScaling",
            service_namespace=appscaling.ServiceNamespace.ECS,
            resource_id=f"service/{self.cluster.cluster_name}/{self.service.service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=e.min_tasks, max_capacity=e.max_tasks,
            role=service_linked_scaling_role(self, "ecs", "ECSService"),
        )
        if self.traffic_shift is None:
            target.scale_to_track_metric(
                "RequestsPerTask", target_value=e.requests_per_task,
                predefined_metric=appscaling.PredefinedMetric.ALB_REQUEST_COUNT_PER_TARGET,
                resource_label=f"{self.alb.load_balancer_full_name}/{self.target_group.target_group_full_name}",
            )
        else:  # production moves between two target groups: track the whole ALB per running task
            requests_per_task_tracking(self, "RequestsPerTask", target, target_value=e.requests_per_task,
                                       load_balancer=self.alb.load_balancer_full_name,
                                       cluster=self.cluster.cluster_name, service=self.service.service_name)
        title = f"mlfn {self.spec.name}"
        self.scale_out_alarm = scale_out_from_zero(
            self, target, self._alb_metric("HTTPCode_ELB_503_Count"),
            f"{title}: the ALB answered 503 (no task registered); sets one task (scale out from zero)",
        )
        if e.min_tasks == 0:
            # The front's request count, not the ALB's RequestCount: the ALB reports requests only while a target
            # is registered, so at zero tasks the idle alarm would stay in ALARM and cancel every scale-out.
            requests = self.front.api.metric_count(statistic="Sum", period=cdk.Duration.minutes(1))
            self.idle_alarm: cw.Alarm | None = scale_in_when_idle(
                self, target, requests, e.idle_minutes,
                f"{title}: no request reached the API for {e.idle_minutes} minutes; scales the service to zero tasks",
            )
        else:
            self.idle_alarm = None
        return target

    def _metrics(self) -> ModelMetrics:
        dims = {"LoadBalancer": self.alb.load_balancer_full_name}
        return ModelMetrics(
            invocations=sum_metric("AWS/ApplicationELB", "RequestCount", dims),
            errors=sum_metric("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", dims),
            throttles=sum_metric("AWS/ApplicationELB", "HTTPCode_ELB_503_Count", dims),
            latency_p99=p99_metric("AWS/ApplicationELB", "TargetResponseTime", dims),
            latency_threshold=LATENCY_ALARM_SECONDS,
        )

    def _acknowledge(self) -> None:
        acknowledge(self, {
            "ELB2": "ALB access logs need an S3 bucket per model; the HTTP API in front logs every request.",
            "AS3": "Scaling events are visible in ECS service events and the dashboard; no SNS topic is assumed.",
            "ECS2": "The only environment variables are the non-secret model directory path and port.",
        })
        acknowledge(self.task_definition, {"IAM5[Resource::*]": ECR_TOKEN_REASON})

    def outputs(self) -> dict[str, str]:
        return {"ClusterName": self.cluster.cluster_name, "ServiceName": self.service.service_name}
