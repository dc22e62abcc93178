"""The current capacity of an Application Auto Scaling scalable target, where the emulator holds it, and setting it.

- `ecs:service:DesiredCount` (`service/<cluster>/<service>`): moto's ECS service, `desired_count`;
- `lambda:function:ProvisionedConcurrency` (`function:<name>:<alias or version>`): `STORES.provisioned`, which the
  data plane follows through `provisioned-concurrency.json` (0 removes the config);
- `sagemaker:inference-component:DesiredCopyCount` (`inference-component/<name>`): `STORES.inference_components`.

Any other dimension has no capacity here (`current` gives None) and is left alone.
"""

from __future__ import annotations

from moto.awslambda.utils import get_backend
from moto.ecs.models import ecs_backends

from . import lambda_api
from .emulated_stores import STORES

ECS_SERVICE = "ecs:service:DesiredCount"
LAMBDA_PROVISIONED = "lambda:function:ProvisionedConcurrency"
INFERENCE_COMPONENT = "sagemaker:inference-component:DesiredCopyCount"


def _ecs_service(account: str, region: str, resource_id: str) -> object | None:
    _, cluster, service = resource_id.split("/", 2)
    found, _ = ecs_backends[account][region].describe_services(cluster, [service])
    return found[0] if found else None


def current(account: str, region: str, dimension: str, resource_id: str) -> int | None:
    """The capacity now, or None when the emulator does not hold this target's capacity."""
    if dimension == ECS_SERVICE:
        service = _ecs_service(account, region, resource_id)
        return None if service is None else int(service.desired_count)  # type: ignore[attr-defined]
    if dimension == LAMBDA_PROVISIONED:
        _, function_name, qualifier = resource_id.split(":", 2)
        with STORES.lock:
            config = STORES.provisioned.get((account, region, function_name, qualifier))
        return 0 if config is None else config.requested
    if dimension == INFERENCE_COMPONENT:
        with STORES.lock:
            component = STORES.inference_components.get((account, region, resource_id.split("/", 1)[1]))
        return None if component is None else component.copy_count
    return None


def set_capacity(account: str, region: str, dimension: str, resource_id: str, value: int) -> None:
    """Apply `value` where the emulator holds this target's capacity (the caller has checked `current`)."""
    if dimension == ECS_SERVICE:
        service = _ecs_service(account, region, resource_id)
        if service is not None:
            service.desired_count = value  # type: ignore[attr-defined]
    elif dimension == LAMBDA_PROVISIONED:
        _, function_name, qualifier = resource_id.split(":", 2)
        if value > 0:
            lambda_api.put_provisioned_concurrency(
                get_backend(account, region), account, region, function_name, qualifier, value
            )
        else:
            lambda_api.delete_provisioned_concurrency(account, region, function_name, qualifier)
    elif dimension == INFERENCE_COMPONENT:
        with STORES.lock:
            component = STORES.inference_components.get((account, region, resource_id.split("/", 1)[1]))
            if component is not None:
                component.copy_count = value
                STORES.save()
