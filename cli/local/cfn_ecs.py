"""`AWS::ECS::Service` as CloudFormation creates it: without `DesiredCount` a new service starts with a desired count
of 1 (on an update without it, the service keeps the count it has). moto creates it with 0, which the emulator's ECS
front would answer with the load balancer's 503 until the scale-out alarm acted (`containers.ContainerEndpoint`);
mlfn's ECS stacks leave `DesiredCount` out on purpose (infra/ecs_model.py)."""

from __future__ import annotations

from typing import Any

from moto.ecs.models import Service

_moto_create = Service.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create(cls: type[Service], resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
            **kwargs: Any) -> Service:
    properties = dict(cloudformation_json.get("Properties") or {})
    if properties.get("DesiredCount") is None and properties.get("SchedulingStrategy") != "DAEMON":
        properties["DesiredCount"] = 1
        cloudformation_json = {**cloudformation_json, "Properties": properties}
    return _moto_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)  # type: ignore[no-any-return]


def install() -> None:
    """Create stack services with CloudFormation's default desired count. Idempotent."""
    Service.create_from_cloudformation_json = classmethod(_create)  # type: ignore[assignment, method-assign, arg-type]
