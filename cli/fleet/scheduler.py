"""How a fleet's deploy steps share the machine and CloudFormation: the `step` hook of `deploy_flow.deploy`.

- build and probe run at most `workers` at a time (default: the machine's cores), pushes (registry-bound) at most
  4 x `workers`;
- synth goes to the fleet's one CDK app run (`BatchSynth`);
- a stack that already holds the same template and tags is not sent a change set (`unchanged_stack`);
- at most `stacks` change sets are in flight; a stack step that CloudFormation throttles ("Rate exceeded",
  error code Throttling) is retried with exponential backoff (2, 4, 8, 16, 32 s, with jitter), as AWS advises.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .synth_batch import BatchSynth
from .unchanged import unchanged_stack

THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "TooManyRequestsException",
                              "RequestLimitExceeded"})
THROTTLING_TEXT = "Rate exceeded"
CPU_STEPS = frozenset({"build", "probe"})
IO_STEPS = frozenset({"push"})  # waits on the registry, mostly: 4 per core


@dataclass(frozen=True)
class Limits:
    workers: int = max(1, os.cpu_count() or 1)
    stacks: int = 4
    retries: int = 5
    backoff_s: float = 2.0


def is_throttling(exc: BaseException) -> bool:
    """AWS refused for rate: a botocore ClientError with a throttling code, or a stack failure whose reason (a
    resource's own, from CloudFormation) says "Rate exceeded"."""
    code = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
    return code in THROTTLING_CODES or THROTTLING_TEXT in str(getattr(exc, "reason", "") or exc)


def with_backoff(fn: Callable[[], Any], *, retries: int, base_s: float, note: Callable[[str], None],
                 sleep: Callable[[float], None] = time.sleep) -> Any:
    """`fn()`, again after 2^n * base_s (plus up to 50% jitter) while AWS throttles it, at most `retries` times."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == retries or not is_throttling(exc):
                raise
            delay = base_s * 2 ** attempt * (1 + random.random() / 2)
            note(f"  throttled by AWS ({str(exc).splitlines()[0][:120]}); retrying in {delay:.1f}s "
                 f"({attempt + 1}/{retries})")
            sleep(delay)
    raise AssertionError("unreachable")


class FleetSteps:
    """The shared gates; `for_model(index, say)` gives one model's `step` hook."""

    def __init__(self, limits: Limits, batch: BatchSynth, sleep: Callable[[float], None] = time.sleep) -> None:
        self.limits, self.batch, self.sleep = limits, batch, sleep
        self.cpu = threading.BoundedSemaphore(limits.workers)
        self.io = threading.BoundedSemaphore(limits.workers * 4)
        self.stacks = threading.BoundedSemaphore(limits.stacks)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0

    def for_model(self, index: int, say: Callable[[str], None]) -> Callable[..., Any]:
        def step(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            if name == "synth":
                return self.batch.template(index, *args)
            if name in CPU_STEPS or name in IO_STEPS:
                with self.cpu if name in CPU_STEPS else self.io:
                    return fn(*args, **kwargs)
            if name == "stack":
                skipped = (unchanged_stack(args[0], args[1], kwargs["session"], kwargs.get("tags"))
                           if len(args) >= 2 and "session" in kwargs else None)
                if skipped is not None:
                    say("  unchanged: the stack already holds this template and these tags (no change set)")
                    return skipped
                with self.stacks:
                    self._count(+1)
                    try:
                        return with_backoff(lambda: fn(*args, **kwargs), retries=self.limits.retries,
                                            base_s=self.limits.backoff_s, note=say, sleep=self.sleep)
                    finally:
                        self._count(-1)
            return fn(*args, **kwargs)

        return step

    def _count(self, delta: int) -> None:
        with self._lock:
            self.in_flight += delta
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
