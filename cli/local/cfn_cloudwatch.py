"""`AWS::CloudWatch::Alarm` for the emulator (moto's CloudFormation skips it), on moto's CloudWatch backend.

Metric-math alarms (`Metrics`) are recorded without their queries. `alarms` evaluates the others and runs their
step-scaling actions.
"""

from __future__ import annotations

from typing import Any

from moto.cloudwatch.models import cloudwatch_backends

from .cfn_base import EmulatedResource, register, tags_dict


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
