"""Which alarm stopped a rollout, and with what value: CloudWatch DescribeAlarmHistory (HistoryItemType StateUpdate).

Each StateUpdate item's `HistoryData` is JSON with `oldState`/`newState`, each `stateValue`, `stateReason` and
(for a metric alarm CloudWatch evaluated) `stateReasonData` with `recentDatapoints`. The history keeps the
transition after the alarm cleared, where DescribeAlarms' StateReason then only says why it is OK again.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

_NUMBERS = re.compile(r"\[([-+0-9.eE, ]+)\]")


def value_of(state: dict[str, Any]) -> float | None:
    """The newest datapoint behind a state: `stateReasonData.recentDatapoints`, else the last number in brackets of
    its reason ("... the datapoints [10.6061] breached ...")."""
    data = state.get("stateReasonData") or {}
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            data = {}
    points = data.get("recentDatapoints") if isinstance(data, dict) else None
    if points:
        return float(points[-1])
    found = _NUMBERS.findall(state.get("stateReason") or "")
    numbers = [n for n in (found[-1].split(",") if found else []) if n.strip()]
    return float(numbers[-1]) if numbers else None


def fired(cloudwatch: Any, names: list[str], since: float) -> dict[str, Any] | None:
    """The first transition to ALARM of any of `names` at or after `since` (epoch seconds): its alarm, time, summary,
    reason and value; None when none of them went to ALARM since."""
    start = datetime.fromtimestamp(since, UTC)
    found: list[dict[str, Any]] = []
    for name in names:
        items = cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate", StartDate=start,
                                                  ScanBy="TimestampAscending").get("AlarmHistoryItems", [])
        for item in items:
            try:
                new = json.loads(item.get("HistoryData") or "{}").get("newState") or {}
            except ValueError:
                continue
            if new.get("stateValue") == "ALARM":
                found.append({"name": name, "at": item["Timestamp"], "summary": item.get("HistorySummary", ""),
                              "reason": new.get("stateReason", ""), "value": value_of(new)})
                break
    return min(found, key=lambda f: f["at"], default=None)


def describe_fired(alarm: dict[str, Any]) -> str:
    """One line: which alarm went to ALARM, when, and its value."""
    at = alarm["at"].strftime("%H:%M:%S") if isinstance(alarm["at"], datetime) else str(alarm["at"])
    value = f"value {alarm['value']:g}" if alarm.get("value") is not None else "no value in its history"
    return f"alarm {alarm['name']} went to ALARM at {at} UTC, {value}: {alarm['reason']}"


def say_fired(cloudwatch: Any, alarms: list[dict[str, Any]], since: float, say: Any) -> dict[str, Any] | None:
    """Say which of `alarms` (name, state, reason) went to ALARM since `since`, with its value, from the alarm
    history; without such a transition, the ones in ALARM now with CloudWatch's StateReason."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        alarm = fired(cloudwatch, [a["name"] for a in alarms], since) if alarms else None
    except (BotoCoreError, ClientError):  # a caller not allowed cloudwatch:DescribeAlarmHistory: the current state
        alarm = None
    if alarm:
        say(describe_fired(alarm))
        return alarm
    for current in alarms:
        if current["state"] == "ALARM":
            say(f"alarm {current['name']} is in ALARM: {current['reason']}")
    return None
