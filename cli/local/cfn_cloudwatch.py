"""`AWS::CloudWatch::Alarm` for the emulator (moto's CloudFormation skips it), on moto's CloudWatch backend.

Metric-math alarms (`Metrics`) are recorded with their queries (MetricStat and Expression). `alarms` evaluates
them and runs their step-scaling actions.
"""

from __future__ import annotations

from typing import Any

from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends

from .cfn_base import EmulatedResource, register, tags_dict


def _query(q: dict[str, Any]) -> MetricDataQuery:
    """One `Metrics` entry as moto's MetricDataQuery (as moto's PutMetricAlarm builds it)."""
    stat = q.get("MetricStat")
    metric_stat = None
    if stat:
        metric = stat.get("Metric", {})
        metric_stat = MetricStat(
            metric=Metric(metric_name=metric.get("MetricName"), namespace=metric.get("Namespace"),
                          dimensions=[Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions") or []]),
            period=stat.get("Period"), stat=stat.get("Stat"), unit=stat.get("Unit"))
    return MetricDataQuery(query_id=q["Id"], label=q.get("Label", ""), period=q.get("Period"),  # type: ignore[arg-type]
                           return_data=q.get("ReturnData", True), expression=q.get("Expression"),
                           metric_stat=metric_stat)


@register
class Alarm(EmulatedResource):
    type_name = "AWS::CloudWatch::Alarm"
    name_property = "AlarmName"
    attribute_names = ("Arn",)

    @classmethod
    def create(cls, name: str, properties: dict[str, Any], account: str, region: str) -> Alarm:
        p = properties
        cloudwatch_backends[account][region].put_metric_alarm(
            name=name,
            namespace=p.get("Namespace"),  # type: ignore[arg-type]
            metric_name=p.get("MetricName"),  # type: ignore[arg-type]
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=int(p["EvaluationPeriods"]),
            period=p.get("Period"),  # type: ignore[arg-type]
            threshold=p.get("Threshold"),  # type: ignore[arg-type]
            statistic=p.get("Statistic"),  # type: ignore[arg-type]
            description=p.get("AlarmDescription", ""),
            dimensions=p.get("Dimensions") or [],
            alarm_actions=p.get("AlarmActions") or [],
            datapoints_to_alarm=p.get("DatapointsToAlarm"),
            extended_statistic=p.get("ExtendedStatistic"),
            ok_actions=p.get("OKActions") or [],
            insufficient_data_actions=p.get("InsufficientDataActions") or [],
            unit=p.get("Unit"),
            actions_enabled=p.get("ActionsEnabled", True) not in (False, "false"),
            treat_missing_data=p.get("TreatMissingData"),
            threshold_metric_id=p.get("ThresholdMetricId"),
            metric_data_queries=[_query(q) for q in p.get("Metrics") or []] or None,
            tags=[{"Key": k, "Value": v} for k, v in tags_dict(p.get("Tags")).items()],
        )
        return cls(name, properties, account, region)

    def change(self, name: str, properties: dict[str, Any]) -> Alarm:
        if name == self.name:
            return type(self).create(name, properties, self.account, self.region)  # put_metric_alarm overwrites
        return super().change(name, properties)  # type: ignore[return-value]

    def delete(self, account_id: str | None = None, region: str | None = None) -> None:
        cloudwatch_backends[self.account][self.region].delete_alarms([self.name])

    def attributes(self) -> dict[str, Any]:
        return {"Arn": f"arn:aws:cloudwatch:{self.region}:{self.account}:alarm:{self.name}"}
