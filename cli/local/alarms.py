"""The emulator's CloudWatch alarm evaluator: metric alarms in moto's CloudWatch are evaluated over the metric data
moto holds, their state is set in moto (DescribeAlarms shows it), and their Application Auto Scaling step actions
run on the scalable targets the emulator holds (`step_scaling`, `scalable_capacity`). moto itself only records
alarms (a new one says OK forever).

CloudWatch's semantics, as AWS documents them ("Using Amazon CloudWatch alarms", "Configuring how CloudWatch
alarms treat missing data", "Alarm actions"):

- an alarm looks at its `EvaluationPeriods` most recent periods of `Period` seconds (aligned to the clock), each
  the `Statistic` (SampleCount, Average, Sum, Minimum, Maximum) or `ExtendedStatistic` (pNN) of the datapoints with
  exactly its namespace, metric name and dimensions (and unit, when it has one); a datapoint breaches when it
  compares to `Threshold` by `ComparisonOperator`; `DatapointsToAlarm` (default: `EvaluationPeriods`) breaching
  datapoints make ALARM, fewer make OK;
- a period without data is treated by `TreatMissingData`: `breaching`, `notBreaching`, `ignore` (the state stays
  when every period is missing; otherwise only the periods with data count) or `missing` (the default: every
  period missing -> INSUFFICIENT_DATA; otherwise only the periods with data count);
- a new alarm starts in INSUFFICIENT_DATA; alarms are evaluated every minute;
- actions (when `ActionsEnabled`) run on a state change, for the new state; Auto Scaling actions also run again
  at every evaluation (once a minute) while the alarm stays in that state, until it changes ("Alarm actions";
  re:Post "Why doesn't my CloudWatch alarm's state change invoke my Amazon EC2 Auto Scaling policy?"). The only
  actions the emulator runs are Application Auto Scaling step-scaling policies; other actions are recorded only.

Not evaluated: metric-math alarms (`Metrics`), composite alarms, anomaly-detection operators; their state is left.

Time scale (an emulator setting, not AWS's): `time_scale` wall-clock seconds stand for one AWS second, for periods,
the one-minute evaluation interval and scaling cooldowns alike. 1.0 (the default) is real time; tests use e.g. 0.02,
so a 60 s period and its evaluation take 1.2 s. Metric timestamps stay wall-clock times. `mlfn local start` takes it
from `MLFN_ALARM_TIME_SCALE`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch.models import Alarm, MetricAggregatedDatum, MetricDatumBase, cloudwatch_backends

from . import step_scaling

LOG = logging.getLogger("mlfn.local.alarms")
TIME_SCALE_ENV = "MLFN_ALARM_TIME_SCALE"
EVALUATION_INTERVAL_S = 60
OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
_AGGREGATE: dict[str | None, Callable[[list[float]], float]] = {
    "Maximum": max, "Minimum": min, "Average": lambda v: sum(v) / len(v), None: lambda v: sum(v) / len(v),
}


def time_scale_from_environment() -> float:
    value = os.environ.get(TIME_SCALE_ENV, "").strip()
    try:
        scale = float(value) if value else 1.0
    except ValueError:
        scale = 0.0
    if not scale > 0:
        raise ValueError(f"{TIME_SCALE_ENV} must be a number above 0 (wall seconds per AWS second), got {value!r}")
    return scale


def _epoch(stamp: datetime) -> float:
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def _values(datum: MetricDatumBase) -> tuple[float, float, float, float]:
    """(sample count, sum, minimum, maximum) of one stored datum."""
    if isinstance(datum, MetricAggregatedDatum):
        return datum.sample_count, datum.sum, datum.min, datum.max
    value = float(datum.value)  # type: ignore[attr-defined]
    return 1.0, value, value, value


def _percentile(data: list[MetricDatumBase], p: float) -> float:
    """Nearest-rank percentile (a StatisticValues set counts as SampleCount values at its average)."""
    values: list[float] = []
    for datum in data:
        count, total, _, _ = _values(datum)
        values.extend([total / count] * max(1, int(count)))
    values.sort()
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def statistic(alarm: Alarm, data: list[MetricDatumBase]) -> float:
    """The alarm's statistic over one period's data (not empty)."""
    if alarm.extended_statistic:
        return _percentile(data, float(str(alarm.extended_statistic).lstrip("pP")))
    values = [_values(d) for d in data]
    count, total = sum(v[0] for v in values), sum(v[1] for v in values)
    return {"SampleCount": count, "Sum": total, "Minimum": min(v[2] for v in values),
            "Maximum": max(v[3] for v in values)}.get(str(alarm.statistic), total / count)  # else Average


def _same_metric(alarm: Alarm, datum: MetricDatumBase) -> bool:
    return (datum.namespace == alarm.namespace and datum.name == alarm.metric_name
            and sorted((d.name, d.value) for d in datum.dimensions)
            == sorted((d.name, d.value) for d in alarm.dimensions)
            and (not alarm.unit or datum.unit == alarm.unit))


def datapoints(alarm: Alarm, metric_data: list[MetricDatumBase], now: float, time_scale: float) -> list[float | None]:
    """The alarm's statistic in each of its `EvaluationPeriods` most recent complete periods, oldest first (None:
    no data in that period)."""
    length = int(alarm.period) * time_scale
    current = math.floor(now / length)
    first = current - int(alarm.evaluation_periods)
    buckets: dict[int, list[MetricDatumBase]] = {}
    for datum in metric_data:
        if _same_metric(alarm, datum):
            bucket = math.floor(_epoch(datum.timestamp) / length)
            if first <= bucket < current:
                buckets.setdefault(bucket, []).append(datum)
    return [statistic(alarm, buckets[b]) if b in buckets else None for b in range(first, current)]


def next_state(alarm: Alarm, points: list[float | None]) -> str:
    """The state CloudWatch gives an alarm with these datapoints (None: missing), per its TreatMissingData."""
    compare = _COMPARE[alarm.comparison_operator]
    treat = alarm.treat_missing_data or "missing"
    needed = int(alarm.datapoints_to_alarm or alarm.evaluation_periods)
    if treat in ("breaching", "notBreaching"):
        breaching = [compare(p, float(alarm.threshold)) if p is not None else treat == "breaching" for p in points]
    else:
        present = [p for p in points if p is not None]
        if not present:
            return INSUFFICIENT_DATA if treat == "missing" else alarm.state_value
        breaching = [compare(p, float(alarm.threshold)) for p in present]
    return ALARM if sum(breaching) >= needed else OK


def evaluable(alarm: Alarm) -> bool:
    return (not alarm.rule and not alarm.metric_data_queries and bool(alarm.metric_name)
            and alarm.comparison_operator in _COMPARE and bool(alarm.period))


def _reason(alarm: Alarm, points: list[float | None], state: str) -> str:
    shown = ", ".join("missing" if p is None else f"{p:g}" for p in points)
    word = {ALARM: "breached", OK: "did not breach"}.get(state, "had no data for")
    return (f"Threshold Crossed: the datapoints [{shown}] {word} the threshold ({float(alarm.threshold):g}) "
            f"({alarm.comparison_operator}, treat missing data: {alarm.treat_missing_data or 'missing'}).")


class AlarmEvaluator:
    """Evaluates every metric alarm moto holds (any account and region) once per (scaled) minute, on a thread."""

    def __init__(self, *, time_scale: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be above 0 (wall seconds per AWS second), got {time_scale!r}")
        self.time_scale, self.clock = time_scale, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.evaluations = 0  # completed rounds (tests wait on it)
        self.actions_run: list[tuple[str, str, int]] = []  # (alarm, policy ARN, capacity set), newest last

    @property
    def interval_s(self) -> float:
        return EVALUATION_INTERVAL_S * self.time_scale

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="mlfn-alarms", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        """Evaluate at every (scaled) minute boundary of the clock, as periods are aligned to it."""
        while True:
            interval = self.interval_s  # read each time: tests change the time scale of a running evaluator
            boundary = (math.floor(self.clock() / interval) + 1) * interval
            if self._stop.wait(max(0.0, boundary - self.clock())):
                return
            try:  # just past the boundary, so the period that ended is complete (float rounding aside)
                self.evaluate_all(max(self.clock(), boundary + interval * 1e-6))
            except Exception:  # one bad alarm must not end evaluation for all
                LOG.exception("alarm evaluation failed")

    def evaluate_all(self, now: float) -> None:
        for account, regions in list(cloudwatch_backends.items()):
            for region, backend in list(regions.items()):
                metric_data = list(backend.metric_data)
                for alarm in [a for a in list(backend.alarms.values()) if evaluable(a)]:
                    self.evaluate(account, region, alarm, metric_data, now)
        self.evaluations += 1

    def evaluate(self, account: str, region: str, alarm: Alarm, metric_data: list[MetricDatumBase],
                 now: float) -> None:
        if not getattr(alarm, "_mlfn_evaluated", False):  # moto's new alarm says OK; AWS's starts with no data
            alarm.state_value, alarm._mlfn_evaluated = INSUFFICIENT_DATA, True  # type: ignore[attr-defined]
        points = datapoints(alarm, metric_data, now, self.time_scale)
        state = next_state(alarm, points)
        changed = state != alarm.state_value
        if changed:
            alarm.update_state(_reason(alarm, points, state), "{}", state)
        if not alarm.actions_enabled:
            return
        actions = {ALARM: alarm.alarm_actions, OK: alarm.ok_actions,
                   INSUFFICIENT_DATA: alarm.insufficient_data_actions}[state]
        # Auto Scaling actions run at every evaluation while the state lasts; others only on a change (and the
        # emulator runs no others).
        present = [p for p in points if p is not None]
        delta = None if not present else self._aggregate_delta(alarm, present)
        breach_above = alarm.comparison_operator.startswith("Greater")
        for arn in actions:
            policy = step_scaling.find_policy(account, region, arn)
            if policy is None:
                continue
            config = policy.step_scaling_policy_configuration or {}
            value = None if delta is None else delta(config.get("MetricAggregationType"))
            capacity = step_scaling.run(account, region, policy, value, breach_above, now, self.time_scale)
            if capacity is not None:
                self.actions_run.append((alarm.name, arn, capacity))
                LOG.info("alarm %s (%s): %s set capacity %d", alarm.name, state, policy.policy_name, capacity)

    @staticmethod
    def _aggregate_delta(alarm: Alarm, present: list[float]) -> Callable[[Any], float]:
        return lambda kind: _AGGREGATE.get(kind, _AGGREGATE[None])(present) - float(alarm.threshold)
