"""Application Auto Scaling helpers shared by the targets."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct


def service_linked_scaling_role(scope: Construct, service: str, suffix: str) -> iam.IRole:
    """Application Auto Scaling's service-linked role for `service` (created by AWS on first use).

    A scalable target without a role would get a new role with no permissions, which cannot scale anything.
    """
    stack = cdk.Stack.of(scope)
    arn = (f"arn:{stack.partition}:iam::{stack.account}:role/aws-service-role/{service}.application-autoscaling."
           f"amazonaws.com/AWSServiceRoleForApplicationAutoScaling_{suffix}")
    return iam.Role.from_role_arn(scope, f"ScalingRole{suffix}", arn, mutable=False)
