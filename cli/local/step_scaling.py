"""Application Auto Scaling step-scaling policies, run by the emulator's alarm evaluator (`alarms`) on the scalable
targets it holds (`scalable_capacity`).

What AWS documents and this module does ("Step scaling policies for Application Auto Scaling",
`StepScalingPolicyConfiguration`, `StepAdjustment`):

- the step is chosen by the metric's distance from the alarm threshold, aggregated over the alarm's most recent
  datapoints by `MetricAggregationType` (Average when unset); above the threshold a step's lower bound is
  inclusive and its upper bound exclusive, below it the other way round;
- `ChangeInCapacity` adds the adjustment, `ExactCapacity` sets it, `PercentChangeInCapacity` adds that percentage
  of the current capacity (a fraction rounds toward zero, but to at least 1 in magnitude, and to at least
  `MinAdjustmentMagnitude`); the result is held within the scalable target's MinCapacity..MaxCapacity;
- cooldown (`Cooldown` seconds, 300 when unset): after a scale-out, a scale-out that the same policy asks for
  during the cooldown counts the capacity that scale-out added (it scales out only when it asks for more); after
  a scale-in, scale-ins wait for the cooldown to end, scale-outs do not;
- a target whose `SuspendedState` suspends dynamic scale-in or scale-out is not scaled that way.

Emulator choices where AWS says nothing: when every datapoint in the alarm's range is missing (an alarm that treats
missing data as breaching), the step open on the breaching side is taken; cooldowns are kept per scalable target
and run on the evaluator's clock (scaled by its time scale).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from moto.applicationautoscaling import models as aas

from . import scalable_capacity

DEFAULT_COOLDOWN_S = 300


@dataclass
class _Activity:
    direction: str  # "out" | "in"
    policy_arn: str
    before: int  # capacity before the activity
    ends: float  # when its cooldown ends (evaluator clock)


_cooldowns: dict[tuple[str, str, str, str], _Activity] = {}
_lock = threading.Lock()


def find_policy(account: str, region: str, arn: str) -> aas.FakeApplicationAutoscalingPolicy | None:
    """The step-scaling policy whose ARN is `arn` (target-tracking policies are not run by the emulator)."""
    for policy in aas.applicationautoscaling_backends[account][region].policies.values():
        if policy.policy_arn == arn and policy.policy_type == "StepScaling":
            return policy
    return None


def _step(steps: list[dict[str, Any]], delta: float | None, breach_above: bool) -> dict[str, Any] | None:
    """The step adjustment whose interval holds `delta` (metric minus threshold); None when none does."""
    for step in steps:
        low, high = step.get("MetricIntervalLowerBound"), step.get("MetricIntervalUpperBound")
        if delta is None:  # no datapoint: the step open on the breaching side
            if (high is None) if breach_above else (low is None):
                return step
            continue
        low_f = -math.inf if low is None else float(low)
        high_f = math.inf if high is None else float(high)
        above = delta >= 0
        if (low_f <= delta if above else low_f < delta) and (delta < high_f if above else delta <= high_f):
            return step
    return None


def _percent_change(capacity: int, percent: float, minimum_magnitude: int) -> int:
    change = capacity * percent / 100
    magnitude = max(1, int(abs(change)), minimum_magnitude) if change else 0
    return int(math.copysign(magnitude, change)) if change else 0


def desired_capacity(config: dict[str, Any], step: dict[str, Any], capacity: int) -> int:
    """The capacity a step asks for from `capacity` (before the target's bounds and cooldowns)."""
    adjustment = step["ScalingAdjustment"]
    kind = config.get("AdjustmentType")
    if kind == "ExactCapacity":
        return int(adjustment)
    if kind == "PercentChangeInCapacity":
        return capacity + _percent_change(capacity, float(adjustment), int(config.get("MinAdjustmentMagnitude") or 0))
    return capacity + int(adjustment)  # ChangeInCapacity


def run(account: str, region: str, policy: aas.FakeApplicationAutoscalingPolicy, delta: float | None,
        breach_above: bool, now: float, time_scale: float) -> int | None:
    """Run `policy` for an alarm whose metric is `delta` from its threshold; returns the capacity it set, or None
    when it changed nothing (no step, no capacity held here, bounds, cooldown, suspended)."""
    config = policy.step_scaling_policy_configuration or {}
    step = _step(list(config.get("StepAdjustments") or []), delta, breach_above)
    if step is None:
        return None
    namespace, resource_id, dimension = policy.service_namespace, policy.resource_id, policy.scalable_dimension
    target = aas.applicationautoscaling_backends[account][region].targets.get(dimension, {}).get(resource_id)
    capacity = scalable_capacity.current(account, region, dimension, resource_id)
    if target is None or capacity is None:
        return None
    key = (account, region, namespace, f"{resource_id}|{dimension}")
    with _lock:
        last = _cooldowns.get(key)
        cooling = last is not None and now < last.ends
        wanted = desired_capacity(config, step, capacity)
        if cooling and last and last.direction == "out" and last.policy_arn == policy.policy_arn:
            wanted = desired_capacity(config, step, last.before)  # what that scale-out added counts here
        wanted = min(max(wanted, int(target.min_capacity or 0)), int(target.max_capacity or 0))
        direction = "out" if wanted > capacity else "in" if wanted < capacity else ""
        state = target.suspended_state
        suspended: dict[str, Any] = state if isinstance(state, dict) else {}
        if (not direction
                or (direction == "in" and (suspended.get("DynamicScalingInSuspended")
                                           or (cooling and last and last.direction == "in")))
                or (direction == "out" and suspended.get("DynamicScalingOutSuspended"))):
            return None
        cooldown = config.get("Cooldown")
        seconds = DEFAULT_COOLDOWN_S if cooldown is None else int(cooldown)
        _cooldowns[key] = _Activity(direction, policy.policy_arn, capacity, now + seconds * time_scale)
    scalable_capacity.set_capacity(account, region, dimension, resource_id, wanted)
    return wanted


def forget(account: str, region: str) -> None:
    """Drop the cooldowns of one account and region (a reset of the emulator's state)."""
    with _lock:
        for key in [k for k in _cooldowns if k[:2] == (account, region)]:
            del _cooldowns[key]
