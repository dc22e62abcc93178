"""Load balancer attributes moto's models do not answer but mlfn's ECS stack reads (for request-count scaling):
`LoadBalancerFullName`, `CanonicalHostedZoneID`, `SecurityGroups` and `TargetGroupFullName`, `TargetGroupName`."""

from __future__ import annotations

from typing import Any

from moto.elbv2.models import FakeLoadBalancer, FakeTargetGroup

ALB_HOSTED_ZONE = "Z35SXDOTRQ7X7K"  # us-east-1's; only its shape matters locally
_moto_lb_attribute = FakeLoadBalancer.get_cfn_attribute


def _lb_attribute(self: FakeLoadBalancer, attribute_name: str) -> Any:
    if attribute_name == "LoadBalancerFullName":
        return self.arn.split(":loadbalancer/", 1)[1]
    if attribute_name == "CanonicalHostedZoneID":
        return ALB_HOSTED_ZONE
    if attribute_name == "SecurityGroups":
        return list(self.security_groups)
    return _moto_lb_attribute(self, attribute_name)


def _tg_attribute(self: FakeTargetGroup, attribute_name: str) -> Any:
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

    values = {
        "TargetGroupFullName": self.arn.split(":", 5)[5],
        "TargetGroupName": self.name,
        "TargetGroupArn": self.arn,
        "LoadBalancerArns": list(self.load_balancer_arns),
    }
    if attribute_name not in values:
        raise UnformattedGetAttTemplateException()
    return values[attribute_name]


def install() -> None:
    """Teach moto's ELBv2 models the attributes above. Idempotent."""
    FakeLoadBalancer.get_cfn_attribute = _lb_attribute  # type: ignore[method-assign]
    FakeTargetGroup.get_cfn_attribute = _tg_attribute  # type: ignore[attr-defined]
    FakeTargetGroup.has_cfn_attr = classmethod(  # type: ignore[method-assign, assignment]
        lambda cls, attr: attr in ("TargetGroupFullName", "TargetGroupName", "TargetGroupArn", "LoadBalancerArns")
    )
