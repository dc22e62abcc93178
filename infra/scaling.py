"""Application Auto Scaling helpers shared by the targets."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
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


ECR_TOKEN_REASON = ("ecr:GetAuthorizationToken has no resource scope (AWS accepts only '*'); image reads are "
                    "limited to the model's own repository.")


def _step_action(scope: Construct, id: str, target: appscaling.IScalableTarget,
                 adjustment_type: appscaling.AdjustmentType) -> appscaling.StepScalingAction:
    """A step policy on `target` (its alarm's metric aggregated by maximum, one minute of cooldown)."""
    return appscaling.StepScalingAction(
        scope, id, scaling_target=target, adjustment_type=adjustment_type,
        metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM, cooldown=cdk.Duration.minutes(1),
    )


def scale_out_from_zero(scope: Construct, target: appscaling.IScalableTarget, metric: cw.IMetric,
                        description: str) -> cw.Alarm:
    """Set capacity to exactly one unit whenever `metric` (which only counts while nothing serves) reaches 1.

    Target tracking cannot start from zero (its per-unit metric is undefined without capacity), so a step
    policy on a "request found no capacity" alarm does it; target tracking takes over from one unit. Application
    Auto Scaling runs a step action again every minute while its alarm stays in ALARM (CloudWatch "Alarm
    actions"): with `ChangeInCapacity` that would be one more unit per minute for as long as the first one boots
    (minutes for a GPU instance or a SageMaker copy); `ExactCapacity` 1 asks for the same single unit each time.
    """
    action = _step_action(scope, "ScaleOutFromZero", target, appscaling.AdjustmentType.EXACT_CAPACITY)
    action.add_adjustment(adjustment=1, lower_bound=0)
    alarm = cw.Alarm(
        scope, "ScaleOutFromZeroAlarm", metric=metric, threshold=1, evaluation_periods=1, datapoints_to_alarm=1,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description,
    )
    alarm.add_alarm_action(cw_actions.ApplicationScalingAction(action))
    return alarm


def scale_in_when_idle(scope: Construct, target: appscaling.IScalableTarget, requests: cw.IMetric, minutes: int,
                       description: str) -> cw.Alarm:
    """Set capacity to 0 after `minutes` one-minute periods without a request.

    `requests` must count every request that reaches the front, also while no capacity serves: the alarm stays
    in ALARM (and its action runs again every minute) until a period has a request. A metric reported only while
    capacity serves (an ALB's `RequestCount`, missing without registered targets) would hold the alarm in ALARM
    at zero and undo every scale-out. No data in a period counts as no request (missing data is breaching).
    """
    action = _step_action(scope, "ScaleInWhenIdle", target, appscaling.AdjustmentType.EXACT_CAPACITY)
    action.add_adjustment(adjustment=0, upper_bound=0)
    alarm = cw.Alarm(
        scope, "ScaleInWhenIdleAlarm", metric=requests, threshold=1, evaluation_periods=minutes,
        datapoints_to_alarm=minutes, comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
        treat_missing_data=cw.TreatMissingData.BREACHING, alarm_description=description,
    )
    alarm.add_alarm_action(cw_actions.ApplicationScalingAction(action))
    return alarm
