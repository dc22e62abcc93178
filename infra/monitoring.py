"""One CloudWatch dashboard and three alarms (errors, throttles, p99 latency) per model.

Each target passes its own metrics; the thresholds are documented in docs/infra.md. Alarms notify the SNS
topic named by the context key `mlfn:alarmTopicArn` when it is set (topics are per account, not per model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

ALARM_TOPIC_CONTEXT = "mlfn:alarmTopicArn"
PERIOD = cdk.Duration.minutes(5)


@dataclass
class ModelMetrics:
    """What a target reports: the three alarmed metrics plus any extra dashboard graphs."""

    invocations: cw.IMetric
    errors: cw.IMetric
    throttles: cw.IMetric
    latency_p99: cw.IMetric
    latency_threshold: float  # in the latency metric's own unit
    error_threshold: float = 5
    extra: list[cw.IWidget] = field(default_factory=list)


class ModelMonitoring(Construct):
    """A dashboard named after the stack and the errors/throttles/latency alarms of one model."""

    def __init__(self, scope: Construct, id: str, *, title: str, metrics: ModelMetrics) -> None:
        super().__init__(scope, id)
        self.errors_alarm = cw.Alarm(
            self, "Errors", metric=metrics.errors, threshold=metrics.error_threshold, evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{title}: {metrics.error_threshold:g} or more failed invocations in 5 minutes",
        )
        self.throttles_alarm = cw.Alarm(
            self, "Throttles", metric=metrics.throttles, threshold=1, evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{title}: requests were throttled or found no capacity",
        )
        self.latency_alarm = cw.Alarm(
            self, "LatencyP99", metric=metrics.latency_p99, threshold=metrics.latency_threshold,
            evaluation_periods=3, datapoints_to_alarm=3,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{title}: p99 latency above {metrics.latency_threshold:g} for 15 minutes",
        )
        self.alarms = [self.errors_alarm, self.throttles_alarm, self.latency_alarm]
        topic_arn = self.node.try_get_context(ALARM_TOPIC_CONTEXT)
        if topic_arn:
            action = cw_actions.SnsAction(sns.Topic.from_topic_arn(self, "AlarmTopic", str(topic_arn)))
            for alarm in self.alarms:
                alarm.add_alarm_action(action)
                alarm.add_ok_action(action)
        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=cdk.Duration.hours(3))
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Invocations", left=[metrics.invocations], width=8),
            cw.GraphWidget(title="Errors and throttles", left=[metrics.errors, metrics.throttles], width=8),
            cw.GraphWidget(title="Latency p99", left=[metrics.latency_p99], width=8,
                           left_annotations=[cw.HorizontalAnnotation(value=metrics.latency_threshold,
                                                                     label="alarm")]),
        )
        self.dashboard.add_widgets(cw.AlarmStatusWidget(alarms=self.alarms, title="Alarms", width=24))
        for widget in metrics.extra:
            self.dashboard.add_widgets(widget)


def sum_metric(namespace: str, name: str, dims: dict[str, str]) -> cw.Metric:
    """A 5-minute sum (no label: a labelled metric would turn an alarm into a metric-math alarm)."""
    return cw.Metric(namespace=namespace, metric_name=name, dimensions_map=dims, statistic="Sum", period=PERIOD)


def p99_metric(namespace: str, name: str, dims: dict[str, str]) -> cw.Metric:
    return cw.Metric(namespace=namespace, metric_name=name, dimensions_map=dims, statistic="p99", period=PERIOD)


def retained_log_group(scope: Construct, id: str, days: int) -> logs.LogGroup:
    """A log group keeping logs `days` days (any value `[logs] retention_days` allows).

    Kept when the stack is deleted or the group replaced, but deleted when the create that made it rolls back
    (DeletionPolicy RetainExceptOnCreate): a group kept by a failed first deploy would make the next deploy fail
    "already exists" on the fixed names SageMaker logs to.
    """
    group = logs.LogGroup(scope, id, retention=logs.RetentionDays.ONE_MONTH,
                          removal_policy=cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)
    cfn = group.node.default_child
    assert isinstance(cfn, logs.CfnLogGroup)
    cfn.retention_in_days = days
    return group
