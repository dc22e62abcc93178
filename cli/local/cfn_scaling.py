"""Application Auto Scaling for the emulator: CloudFormation ScalableTarget/ScalingPolicy (moto has neither) on moto's
Application Auto Scaling backend, which is taught the dimensions mlfn scales (moto refuses them):
`sagemaker:inference-component:DesiredCopyCount` and `sagemaker:variant:DesiredProvisionedConcurrency`.

Registering a target applies its minimum the way AWS does at once: a Lambda alias gets at least MinCapacity
provisioned concurrency, an inference component's copy count is brought within [MinCapacity, MaxCapacity].
"""

from __future__ import annotations

import contextlib
import re
from enum import Enum
from typing import Any

from moto.applicationautoscaling import models as aas
from moto.applicationautoscaling import responses as aas_responses
from moto.awslambda.utils import get_backend

from . import lambda_api
from .cfn_base import EmulatedResource, register
from .emulated_stores import STORES

EXTRA_DIMENSIONS = {
    "sagemaker:inference-component:DesiredCopyCount": re.compile(r"^inference-component/[^/]+$"),
    "sagemaker:variant:DesiredProvisionedConcurrency": re.compile(r"^endpoint/[^/]+/variant/[^/]+$"),
}
_moto_valid = aas._target_params_are_valid
_MotoDimensions = aas.ScalableDimensionValueSet
Dimensions = Enum(  # type: ignore[misc]
    "ScalableDimensionValueSet",
    {**{m.name: m.value for m in _MotoDimensions}, **{d.replace(":", "_").upper(): d for d in EXTRA_DIMENSIONS}},
)


def _target_params_are_valid(namespace: str, r_id: str, dimension: str) -> bool:
    pattern = EXTRA_DIMENSIONS.get(dimension)
    if pattern is not None:
        if namespace != "sagemaker" or not pattern.match(r_id):
            raise aas.AWSValidationException("Unsupported service namespace, resource type or scalable dimension")
        return True
    return bool(_moto_valid(namespace, r_id, dimension))


def backend(account: str, region: str) -> aas.ApplicationAutoscalingBackend:
    return aas.applicationautoscaling_backends[account][region]


def apply_minimum(account: str, region: str, resource_id: str, dimension: str, low: int, high: int) -> None:
    """Do what Application Auto Scaling does on registration: keep the capacity within the new bounds."""
    if dimension == "lambda:function:ProvisionedConcurrency" and low > 0:
        _, function_name, qualifier = resource_id.split(":", 2)
        lambda_api.put_provisioned_concurrency(
            get_backend(account, region), account, region, function_name, qualifier, low
        )
    elif dimension == "sagemaker:inference-component:DesiredCopyCount":
        name = resource_id.split("/", 1)[1]
        with STORES.lock:
            component = STORES.inference_components.get((account, region, name))
            if component is not None:
                component.copy_count = min(max(component.copy_count, low), high)
                STORES.save()


@register
class ScalableTarget(EmulatedResource):
    type_name = "AWS::ApplicationAutoScaling::ScalableTarget"
    attribute_names = ("Id",)

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> ScalableTarget:
        low, high = int(properties["MinCapacity"]), int(properties["MaxCapacity"])
        if low > high:
            raise aas.AWSValidationException(f"MinCapacity ({low}) must be at most MaxCapacity ({high}).")
        namespace, resource_id = properties["ServiceNamespace"], properties["ResourceId"]
        dimension = properties["ScalableDimension"]
        backend(account, region).register_scalable_target(
            namespace, resource_id, dimension, low, high, properties.get("RoleARN", ""),
            properties.get("SuspendedState"),  # type: ignore[arg-type]
        )
        for action in properties.get("ScheduledActions") or []:
            backend(account, region).put_scheduled_action(
                namespace, action["Schedule"], action.get("Timezone"), action["ScheduledActionName"],  # type: ignore[arg-type]
                resource_id, dimension, action.get("StartTime"), action.get("EndTime"),  # type: ignore[arg-type]
                action.get("ScalableTargetAction"),  # type: ignore[arg-type]
            )
        apply_minimum(account, region, resource_id, dimension, low, high)
        self = cls(name, properties, account, region)
        self.namespace, self.resource_id, self.dimension = namespace, resource_id, dimension
        self.physical_id = f"{resource_id}|{dimension}|{namespace}"  # what AWS gives as Ref
        return self

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        b = backend(self.account, self.region)
        for action in self.properties.get("ScheduledActions") or []:
            b.delete_scheduled_action(self.namespace, action["ScheduledActionName"], self.resource_id, self.dimension)
        with contextlib.suppress(aas.AWSValidationException):
            b.deregister_scalable_target(self.namespace, self.resource_id, self.dimension)

    def attributes(self) -> dict[str, Any]:
        return {"Id": self.physical_id}


@register
class ScalingPolicy(EmulatedResource):
    type_name = "AWS::ApplicationAutoScaling::ScalingPolicy"
    attribute_names = ("Arn",)

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> ScalingPolicy:
        if properties.get("ScalingTargetId"):
            resource_id, dimension, namespace = properties["ScalingTargetId"].split("|")
        else:
            resource_id = properties["ResourceId"]
            dimension, namespace = properties["ScalableDimension"], properties["ServiceNamespace"]
        policy_type = properties["PolicyType"]
        body_key = (
            "TargetTrackingScalingPolicyConfiguration" if policy_type == "TargetTrackingScaling"
            else "StepScalingPolicyConfiguration"
        )
        body = properties.get(body_key)
        if not body:
            raise aas.AWSValidationException(f"A {policy_type} policy needs {body_key}.")
        policy = backend(account, region).put_scaling_policy(
            properties["PolicyName"], namespace, resource_id, dimension, body, policy_type
        )
        self = cls(properties["PolicyName"], properties, account, region)
        self.namespace, self.resource_id, self.dimension = namespace, resource_id, dimension
        self.physical_id = policy.policy_arn
        return self

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        with contextlib.suppress(aas.AWSValidationException):
            backend(self.account, self.region).delete_scaling_policy(
                self.name, self.namespace, self.resource_id, self.dimension
            )

    def attributes(self) -> dict[str, Any]:
        return {"Arn": self.physical_id}


def install() -> None:
    """Teach moto's Application Auto Scaling the extra dimensions. Idempotent."""
    aas._target_params_are_valid = _target_params_are_valid
    aas_responses.ScalableDimensionValueSet = Dimensions  # what the API's parameter check lists
