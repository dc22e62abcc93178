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

Metric-math alarms (`Metrics`): each `MetricStat` query is the statistic of its metric per period (as above, with
its own Period, Stat and Unit), each `Expression` is computed per period from them by `metric_math` (no eval), and
the query with `ReturnData` true gives the alarm's datapoints; `TreatMissingData` applies to the periods where that
expression has no value ("Create a CloudWatch alarm based on a metric math expression"; PutMetricAlarm `Metrics`).

Not evaluated: composite alarms, anomaly-detection operators, math functions outside `metric_math`'s subset; their
state is left.

Time scale (an emulator setting, not AWS's): `time_scale` wall-clock seconds stand for one AWS second, for periods,
the one-minute evaluation interval and scaling cooldowns alike. 1.0 (the default) is real time; tests use e.g. 0.02,
so a 60 s period and its evaluation take 1.2 s. Metric timestamps stay wall-clock times. `mlfn local start` takes it
from `MLFN_ALARM_TIME_SCALE`.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch.models import Alarm, MetricAggregatedDatum, MetricDatumBase, cloudwatch_backends

from . import metric_math, step_scaling

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


def _statistic(stat: str, data: list[MetricDatumBase]) -> float:
    """A statistic (SampleCount, Sum, Minimum, Maximum, Average or pNN) over one period's data (not empty)."""
    if stat[:1] in "pP" and stat[1:].replace(".", "", 1).isdigit():
        return _percentile(data, float(stat[1:]))
    values = [_values(d) for d in data]
    count, total = sum(v[0] for v in values), sum(v[1] for v in values)
    return {"SampleCount": count, "Sum": total, "Minimum": min(v[2] for v in values),
            "Maximum": max(v[3] for v in values)}.get(stat, total / count)  # else Average


def statistic(alarm: Alarm, data: list[MetricDatumBase]) -> float:
    """The alarm's statistic over one period's data (not empty)."""
    return _statistic(str(alarm.extended_statistic or alarm.statistic), data)


def _same_metric(namespace: str, name: str, dimensions: list[Any], unit: str | None,
                 datum: MetricDatumBase) -> bool:
    return (datum.namespace == namespace and datum.name == name
            and sorted((d.name, d.value) for d in datum.dimensions) == sorted((d.name, d.value) for d in dimensions)
            and (not unit or datum.unit == unit))


def _series(metric_data: list[MetricDatumBase], matches: Callable[[MetricDatumBase], bool], stat: str,
            period_s: int, periods: int, now: float, time_scale: float) -> list[float | None]:
    """`stat` of the matching data in each of the `periods` most recent complete periods, oldest first."""
    length = period_s * time_scale
    current = math.floor(now / length)
    first = current - periods
    buckets: dict[int, list[MetricDatumBase]] = {}
    for datum in metric_data:
        if matches(datum):
            bucket = math.floor(_epoch(datum.timestamp) / length)
            if first <= bucket < current:
                buckets.setdefault(bucket, []).append(datum)
    return [_statistic(stat, buckets[b]) if b in buckets else None for b in range(first, current)]


def _is_true(flag: Any) -> bool:
    return flag is True or str(flag).lower() == "true"


def _returned(alarm: Alarm) -> Any:
    """The query whose values the alarm watches: the one with ReturnData true (else the only expression)."""
    queries = alarm.metric_data_queries
    marked = [q for q in queries if _is_true(q.return_data)]
    expressions = [q for q in queries if q.expression]
    return marked[0] if len(marked) == 1 else (expressions[0] if len(expressions) == 1 else None)


def _math_datapoints(alarm: Alarm, metric_data: list[MetricDatumBase], now: float,
                     time_scale: float) -> list[float | None]:
    """The returned query's value in each of the `EvaluationPeriods` most recent periods (None: missing)."""
    queries = {q.id: q for q in alarm.metric_data_queries}
    periods = int(alarm.evaluation_periods)
    stat_periods = [int(q.metric_stat.period) for q in queries.values() if q.metric_stat is not None]
    series: dict[str, list[float | None]] = {}
    for query in queries.values():
        if query.metric_stat is not None:
            ms = query.metric_stat
            matches = functools.partial(_same_metric, ms.metric.namespace, ms.metric.metric_name,
                                        ms.metric.dimensions, ms.unit)
            series[query.id] = _series(metric_data, matches, str(ms.stat), int(ms.period), periods, now,
                                       time_scale)
    if len(set(stat_periods)) > 1:
        raise metric_math.MetricMathError(f"alarm {alarm.name}: its metrics have different periods "
                                          f"{sorted(set(stat_periods))}; the emulator needs one")
    trees = {i: metric_math.parse(q.expression) for i, q in queries.items() if q.expression}

    def value(query_id: str, index: int, seen: frozenset[str]) -> float | None:
        if query_id in series:
            return series[query_id][index]
        if query_id not in trees or query_id in seen:
            raise metric_math.MetricMathError(f"alarm {alarm.name}: the expression refers to {query_id!r}, which "
                                              "is no query of this alarm (or refers to itself)")
        tree = trees[query_id]
        return metric_math.evaluate(tree, {r: value(r, index, seen | {query_id})
                                           for r in metric_math.references(tree)})

    returned = _returned(alarm)
    return [value(returned.id, i, frozenset()) for i in range(periods)]


def datapoints(alarm: Alarm, metric_data: list[MetricDatumBase], now: float, time_scale: float) -> list[float | None]:
    """The alarm's statistic (or math expression) in each of its `EvaluationPeriods` most recent complete periods,
    oldest first (None: no data in that period)."""
    if alarm.metric_data_queries:
        return _math_datapoints(alarm, metric_data, now, time_scale)
    return _series(metric_data, lambda d: _same_metric(alarm.namespace, alarm.metric_name, alarm.dimensions,
                                                      alarm.unit, d),
                   str(alarm.extended_statistic or alarm.statistic), int(alarm.period),
                   int(alarm.evaluation_periods), now, time_scale)


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
    if alarm.rule or alarm.comparison_operator not in _COMPARE:
        return False
    if alarm.metric_data_queries:
        return _returned(alarm) is not None and any(q.metric_stat is not None for q in alarm.metric_data_queries)
    return bool(alarm.metric_name) and bool(alarm.period)


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
                    try:
                        self.evaluate(account, region, alarm, metric_data, now)
                    except metric_math.MetricMathError as error:  # its state is left; the others go on
                        LOG.warning("alarm %s not evaluated: %s", alarm.name, error)
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
