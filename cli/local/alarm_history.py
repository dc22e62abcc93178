"""DescribeAlarmHistory for the emulator's CloudWatch (moto 5.2.5 keeps each alarm's earlier states but serves no
history): StateUpdate items built from moto's per-alarm `history` (the state before each update) and the current
state, as AWS's AlarmHistoryItem: AlarmName, AlarmType, Timestamp, HistoryItemType, HistorySummary ("Alarm updated
from OK to ALARM") and HistoryData JSON (`version`, `oldState` and `newState` with stateValue, stateReason and
stateReasonData when the update carried any)."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import pairwise
from typing import Any

from moto.cloudwatch import responses as cw_responses
from moto.core.responses import ActionResult


def _state(value: str, reason: str, data: str) -> dict[str, Any]:
    state: dict[str, Any] = {"stateValue": value, "stateReason": reason}
    try:
        parsed = json.loads(data or "{}")
    except ValueError:
        parsed = {}
    if parsed:
        state["stateReasonData"] = parsed
    return state


def history_items(alarm: Any) -> list[dict[str, Any]]:
    """The alarm's state transitions, oldest first."""
    states = [(value, reason, data, stamp) for _, reason, data, value, stamp in alarm.history]
    states.append((alarm.state_value, alarm.state_reason, alarm.state_reason_data, alarm.state_updated_timestamp))
    items = []
    for old, new in pairwise(states):
        data = {"version": "1.0", "oldState": _state(*old[:3]), "newState": _state(*new[:3])}
        items.append({"AlarmName": alarm.name, "AlarmType": "CompositeAlarm" if alarm.rule else "MetricAlarm",
                      "Timestamp": new[3], "HistoryItemType": "StateUpdate",
                      "HistorySummary": f"Alarm updated from {old[0]} to {new[0]}", "HistoryData": json.dumps(data)})
    return items


def _when(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value)).astimezone()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _aware(stamp: datetime) -> datetime:
    return stamp if stamp.tzinfo else stamp.astimezone()


def describe_alarm_history(self: Any) -> ActionResult:
    name = self._get_param("AlarmName")
    kind = self._get_param("HistoryItemType")
    start, end = _when(self._get_param("StartDate")), _when(self._get_param("EndDate"))
    alarms = [a for a in self.cloudwatch_backend.describe_alarms() if not name or a.name == name]
    items = [] if kind not in (None, "", "StateUpdate") else [i for a in alarms for i in history_items(a)]
    items = [i for i in items if (start is None or _aware(i["Timestamp"]) >= _aware(start))
             and (end is None or _aware(i["Timestamp"]) <= _aware(end))]
    items.sort(key=lambda i: _aware(i["Timestamp"]), reverse=self._get_param("ScanBy") != "TimestampAscending")
    limit = int(self._get_param("MaxRecords") or 100)
    return ActionResult({"AlarmHistoryItems": items[:limit]})


def install() -> None:
    """Serve DescribeAlarmHistory from moto's CloudWatch. Idempotent."""
    cw_responses.CloudWatchResponse.describe_alarm_history = describe_alarm_history  # type: ignore[attr-defined]
