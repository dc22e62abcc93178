"""DescribeAlarmHistory on the emulator's CloudWatch (moto 5.2.5 serves none): StateUpdate items whose HistoryData
carries newState.stateReason / stateReasonData, so `mlfn` names the alarm that stopped a rollout and its value even
after the alarm went back to OK (DescribeAlarms' StateReason then only says why it is OK)."""

from __future__ import annotations

import json
import time
import uuid

import boto3

from mlfn.cli.alarm_history import describe_fired, fired

REASON = "Threshold Crossed: 1 datapoint [9.0] was greater than or equal to the threshold (5.0)."


def test_history_keeps_the_transition_to_alarm_and_its_value_after_the_alarm_cleared() -> None:
    cloudwatch = boto3.client("cloudwatch")
    name = f"rollout-{uuid.uuid4().hex[:6]}"
    cloudwatch.put_metric_alarm(AlarmName=name, Namespace="mlfn", MetricName="ServerErrors", Statistic="Sum",
                                Period=60, EvaluationPeriods=1, Threshold=5,
                                ComparisonOperator="GreaterThanOrEqualToThreshold")
    since = time.time() - 1
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=REASON,
                               StateReasonData=json.dumps({"version": "1.0", "recentDatapoints": [9.0],
                                                           "threshold": 5.0}))
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="Threshold Crossed: back under")
    assert cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] == "OK"

    items = cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate",
                                              ScanBy="TimestampAscending")["AlarmHistoryItems"]
    assert [i["HistorySummary"] for i in items] == ["Alarm updated from OK to ALARM", "Alarm updated from ALARM to OK"]
    assert {i["HistoryItemType"] for i in items} == {"StateUpdate"} and items[0]["AlarmName"] == name
    data = json.loads(items[0]["HistoryData"])
    assert data["oldState"]["stateValue"] == "OK"
    assert data["newState"] == {"stateValue": "ALARM", "stateReason": REASON,
                                "stateReasonData": {"version": "1.0", "recentDatapoints": [9.0], "threshold": 5.0}}
    assert cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="Action")["AlarmHistoryItems"] == []

    alarm = fired(cloudwatch, [name, f"{name}-other"], since)
    assert alarm is not None and (alarm["name"], alarm["value"], alarm["reason"]) == (name, 9.0, REASON)
    assert describe_fired(alarm).startswith(f"alarm {name} went to ALARM at ")
    assert describe_fired(alarm).endswith(f" UTC, value 9: {REASON}")
    assert fired(cloudwatch, [name], time.time() + 60) is None  # nothing since then
