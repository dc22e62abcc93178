"""`MlfnSageMakerModel`: an endpoint hosting the model as an inference component that scales to zero,
or a SageMaker Serverless endpoint (`[sagemaker] serverless = true`, small CPU models), behind an IAM-guarded
HTTPS front.

Inference component: managed instance scaling with `min_instances` (0 lets the endpoint shed every instance),
a scalable target on `sagemaker:inference-component:DesiredCopyCount` spanning `min_copies..max_copies`, target
tracking on invocations per copy, and a step-scaling policy on the `NoCapacityInvocationFailures` alarm that adds
a copy when requests arrive while none exists. A deploy creates one copy (proving the image serves), which
scales in to `min_copies` once idle.
"""

from __future__ import annotations

import hashlib
import re

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker

from .base import MlfnModel
from .fronts import SageMakerRestFront
from .image import MODEL_DIR_IN_IMAGE, asset_options
from .monitoring import ModelMetrics, ModelMonitoring, p99_metric, retained_log_group, sum_metric
from .nag import acknowledge
from .rollout import inference_component_deployment, latency_threshold, rollout_alarms
from .scaling import ECR_TOKEN_REASON, scale_out_from_zero, service_linked_scaling_role

VARIANT = "AllTraffic"
# SageMaker answers within 60 s; alarm when p99 model latency (microseconds) passes 80% of that.
LATENCY_ALARM_MICROSECONDS = 48_000_000
MAX_NAME = 63


def physical_name(base: str, suffix: str = "") -> str:
    """A SageMaker name (at most 63 characters) from the stack's name, shortened with a hash when too long."""
    name = f"{base}{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - len(suffix) - 9]}-{digest}{suffix}"


class MlfnSageMakerModel(MlfnModel):
    """One model on a SageMaker endpoint (inference component or serverless) with an HTTPS URL."""

    TARGET = "sagemaker"

    def _build(self) -> None:
        s = self.spec.settings
        sm = s.sagemaker
        stack = cdk.Stack.of(self)
        # A ModelStack holds one model: the endpoint takes the stack's name. In a user's stack, add the construct id.
        single = getattr(stack, "holds_one_model", False)
        base = stack.stack_name if single else f"{stack.stack_name}-{self.node.id}"
        self.endpoint_name = physical_name(re.sub(r"[^a-zA-Z0-9]+", "-", base).strip("-"))
        self.serverless = sm.serverless
        self.inference_component_name = None if sm.serverless else physical_name(self.endpoint_name, "-ic")

        self.role = iam.Role(self, "ExecutionRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                             description=f"mlfn {self.spec.name}: SageMaker pulls the image and writes logs")
        self.log_groups = [retained_log_group(self, "EndpointLogs", s.logs.retention_days)]
        self._name_log_group(self.log_groups[0], f"/aws/sagemaker/Endpoints/{self.endpoint_name}")
        if self.inference_component_name:
            group = retained_log_group(self, "ComponentLogs", s.logs.retention_days)
            self._name_log_group(group, f"/aws/sagemaker/InferenceComponents/{self.inference_component_name}")
            self.log_groups.append(group)
        for group in self.log_groups:
            group.grant_write(self.role)
            self.role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                                                        resources=[group.log_group_arn]))

        self.model = sagemaker.CfnModel(
            self, "Model",
            execution_role_arn=self.role.role_arn,
            # Serverless Inference does not support network isolation (its "Feature exclusions").
            enable_network_isolation=not sm.serverless,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self._image_uri(), environment={"MLFN_MODEL_DIR": MODEL_DIR_IN_IMAGE},
            ),
        )
        policy = self.role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            self.model.node.add_dependency(policy)
        self.endpoint_config = self._serverless_config() if sm.serverless else self._component_config()
        self.endpoint = sagemaker.CfnEndpoint(self, "Endpoint", endpoint_name=self.endpoint_name,
                                              endpoint_config_name=self.endpoint_config.attr_endpoint_config_name)
        self.endpoint_arn = stack.format_arn(service="sagemaker", resource="endpoint",
                                             resource_name=self.endpoint_name)
        self.scalable_target: appscaling.ScalableTarget | None = None
        self.scale_out_alarm: cw.Alarm | None = None
        if self.inference_component_name:
            self._inference_component()

        self.front = SageMakerRestFront(self, "Front", endpoint_name=self.endpoint_name,
                                        endpoint_arn=self.endpoint_arn,
                                        inference_component=self.inference_component_name,
                                        description=f"mlfn {self.spec.name} (SageMaker)")
        self.front.node.add_dependency(self.endpoint)
        self.invoke_url = self.front.url
        self.auth_type = "AWS_IAM"
        self.monitoring = ModelMonitoring(self, "Monitoring", title=f"mlfn {self.spec.name}",
                                          metrics=self._metrics())

    @staticmethod
    def _name_log_group(group: object, name: str) -> None:
        cfn = group.node.default_child  # type: ignore[attr-defined]
        cfn.log_group_name = name

    def _image_uri(self) -> str:
        if self.image is not None:
            repository = self._repository()
            repository.grant_pull(self.role)
            self._acknowledge_ecr_token()
            return self.image.uri
        from aws_cdk.aws_ecr_assets import DockerImageAsset, Platform

        asset = DockerImageAsset(self, "Image", **asset_options(self, self.spec, self.TARGET, Platform.LINUX_AMD64))
        asset.repository.grant_pull(self.role)
        self._acknowledge_ecr_token()
        return asset.image_uri

    def _acknowledge_ecr_token(self) -> None:
        acknowledge(self.role, {"IAM5[Resource::*]": ECR_TOKEN_REASON})

    def _serverless_config(self) -> sagemaker.CfnEndpointConfig:
        sm = self.spec.settings.sagemaker
        return sagemaker.CfnEndpointConfig(self, "EndpointConfig", production_variants=[
            sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT, model_name=self.model.attr_model_name,
                serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                    memory_size_in_mb=sm.serverless_memory_mb, max_concurrency=sm.serverless_max_concurrency,
                ),
            )
        ])

    def _component_config(self) -> sagemaker.CfnEndpointConfig:
        sm = self.spec.settings.sagemaker
        return sagemaker.CfnEndpointConfig(self, "EndpointConfig", execution_role_arn=self.role.role_arn,
                                           production_variants=[
            sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT, instance_type=sm.instance_type,
                initial_instance_count=max(1, sm.min_instances),
                managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                    status="ENABLED", min_instance_count=sm.min_instances, max_instance_count=sm.max_instances,
                ),
                routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                    routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                ),
            )
        ])

    def _inference_component(self) -> None:
        sm = self.spec.settings.sagemaker
        assert self.inference_component_name
        resources = sagemaker.CfnInferenceComponent.InferenceComponentComputeResourceRequirementsProperty(
            number_of_cpu_cores_required=sm.cpus_per_copy,
            min_memory_required_in_mb=sm.memory_per_copy_mb,
            number_of_accelerator_devices_required=sm.gpus_per_copy or None,
        )
        rollout = self.spec.settings.rollout
        self.rollout_alarms: list[cw.Alarm] = []
        if rollout.strategy != "all_at_once":
            dims = {"InferenceComponentName": self.inference_component_name}
            self.rollout_alarms = rollout_alarms(
                self, rollout, errors=sum_metric("AWS/SageMaker", "Invocation5XXErrors", dims),
                requests=sum_metric("AWS/SageMaker", "Invocations", dims),
                latency_p99=p99_metric("AWS/SageMaker", "ModelLatency", dims),
                latency_threshold=latency_threshold(rollout, LATENCY_ALARM_MICROSECONDS, 1000))
        self.component = sagemaker.CfnInferenceComponent(
            self, "InferenceComponent",
            inference_component_name=self.inference_component_name,
            endpoint_name=self.endpoint.attr_endpoint_name,
            variant_name=VARIANT,
            specification=sagemaker.CfnInferenceComponent.InferenceComponentSpecificationProperty(
                model_name=self.model.attr_model_name, compute_resource_requirements=resources,
            ),
            runtime_config=sagemaker.CfnInferenceComponent.InferenceComponentRuntimeConfigProperty(
                copy_count=max(1, sm.min_copies)
            ),
            deployment_config=(inference_component_deployment(rollout, self.rollout_alarms)
                               if self.rollout_alarms else None),
        )
        self.scalable_target = appscaling.ScalableTarget(
            self, "CopyScaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"inference-component/{self.inference_component_name}",
            scalable_dimension="sagemaker:inference-component:DesiredCopyCount",
            min_capacity=sm.min_copies, max_capacity=sm.max_copies,
            role=service_linked_scaling_role(self, "sagemaker", "SageMakerEndpoint"),
        )
        self.scalable_target.node.add_dependency(self.component)
        self.scalable_target.scale_to_track_metric(
            "InvocationsPerCopy", target_value=sm.invocations_per_copy,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_INFERENCE_COMPONENT_INVOCATIONS_PER_COPY,
        )
        no_capacity = cw.Metric(
            namespace="AWS/SageMaker", metric_name="NoCapacityInvocationFailures", statistic="Maximum",
            period=cdk.Duration.minutes(1), dimensions_map={"InferenceComponentName": self.inference_component_name},
        )
        self.scale_out_alarm = scale_out_from_zero(
            self, self.scalable_target, no_capacity,
            f"mlfn {self.spec.name}: requests found no copy; sets one copy (scale out from zero)",
        )

    def _metrics(self) -> ModelMetrics:
        if self.inference_component_name:
            dims = {"InferenceComponentName": self.inference_component_name}
            throttles = sum_metric("AWS/SageMaker", "NoCapacityInvocationFailures", dims)
        else:
            dims = {"EndpointName": self.endpoint_name, "VariantName": VARIANT}
            throttles = sum_metric("AWS/SageMaker", "Invocation4XXErrors", dims)
        return ModelMetrics(
            invocations=sum_metric("AWS/SageMaker", "Invocations", dims),
            errors=sum_metric("AWS/SageMaker", "Invocation5XXErrors", dims),
            throttles=throttles,
            latency_p99=p99_metric("AWS/SageMaker", "ModelLatency", dims),
            latency_threshold=LATENCY_ALARM_MICROSECONDS,
        )

    def outputs(self) -> dict[str, str]:
        out = {"EndpointName": self.endpoint_name}
        if self.inference_component_name:
            out["InferenceComponentName"] = self.inference_component_name
        return out
