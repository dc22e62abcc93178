"""The sandboxes of one function, scheduled with Lambda's rules.

- One invocation at a time per sandbox; a free (warm) sandbox is reused, most recently used first.
- No free sandbox: start a new one (a cold start) unless the function is at its concurrency cap, in which case the
  request is throttled at once (synchronous Lambda invokes never queue). The cap is the reserved concurrency; functions
  without one share the account's unreserved concurrency (`Account`: the account's, 10 by default as seen in new AWS
  accounts, less every function's reserved concurrency), counted over every function of the data plane.
- Provisioned concurrency keeps that many sandboxes initialised (init type `provisioned-concurrency`, no cold start
  reported) and exempt from reclaim; they count against the cap.
- With reserved concurrency N, more than 10 x N requests within one second are throttled too (Reason
  `ReservedFunctionInvocationRateLimitExceeded`), as a function URL does.
- A sandbox idle longer than `idle_s` is reclaimed (scale to zero); a sandbox that timed out or crashed is gone and the
  next request that needs one starts a new one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from dataclasses import dataclass

from .config import FunctionConfig
from .image_rootfs import ImageRun
from .logsink import LogSink
from .sandbox import InvokeResult, Sandbox
from .snapstart import Snapshot

DEFAULT_ACCOUNT_CONCURRENCY = 10


RPS_PER_CONCURRENCY = 10  # a function URL's request rate limit: 10 x its reserved concurrency, per second


def throttle_body(reserved: bool, *, rate: bool = False) -> bytes:
    """Lambda's TooManyRequestsException document (`Reason` values from botocore's ThrottleReason)."""
    if rate:
        reason = "ReservedFunctionInvocationRateLimitExceeded"
    elif reserved:
        reason = "ReservedFunctionConcurrentInvocationLimitExceeded"
    else:
        reason = "ConcurrentInvocationLimitExceeded"
    return json.dumps({"Reason": reason, "Type": "User", "message": "Rate Exceeded."}).encode()


class Account:
    """The account's concurrency in a Region, shared by every function of the data plane: functions with reserved
    concurrency keep theirs, the others share what is left (the unreserved pool)."""

    def __init__(self, limit: int = DEFAULT_ACCOUNT_CONCURRENCY) -> None:
        self.limit = limit
        self.pools: set[FunctionPool] = set()

    def unreserved_limit(self) -> int:
        return max(0, self.limit - sum(p.config.reserved for p in self.pools if p.config.reserved >= 0))

    def unreserved_in_use(self) -> int:
        return sum(p.in_use() for p in self.pools if p.config.reserved < 0)

    def full(self) -> bool:
        return self.unreserved_in_use() >= self.unreserved_limit()


@dataclass
class PoolStats:
    sandboxes: int = 0
    busy: int = 0
    idle: int = 0
    starting: int = 0
    invocations: int = 0
    cold_starts: int = 0
    throttles: int = 0
    reclaimed: int = 0
    recycled: int = 0  # ended by a timeout, a crash or an init error


class FunctionPool:
    """Schedules invocations of one function onto its sandboxes."""

    def __init__(self, config: FunctionConfig, sink: LogSink, *, account: Account | None = None,
                 memory_mode: str = "auto", run: ImageRun | None = None) -> None:
        self.config = config
        self.run = run or ImageRun(config.image, reason="not prepared")  # what the sandboxes run (image_rootfs)
        self.sink = sink
        self.account = account if account is not None else Account()
        self.account.pools.add(self)
        self.memory_mode = memory_mode
        self._idle: list[Sandbox] = []
        self._busy: set[Sandbox] = set()
        self._starting = 0
        self._provisioned: set[Sandbox] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self._filling = asyncio.Lock()
        self._recent: collections.deque[float] = collections.deque()  # start times of the last second's invocations
        self.stats = PoolStats()
        self.snapstart: Snapshot | None = None  # SnapStart: the version's snapshot, taken by start()

    @property
    def cap(self) -> int:
        return self.config.reserved if self.config.reserved >= 0 else self.account.limit

    def _total(self) -> int:
        return len(self._idle) + len(self._busy) + self._starting

    def in_use(self) -> int:
        """The concurrency this function takes now: invocations running or starting, and provisioned sandboxes."""
        return len(self._busy) + self._starting + sum(1 for s in self._idle if s in self._provisioned)

    def snapshot(self) -> PoolStats:
        s = self.stats
        s.busy, s.idle, s.starting = len(self._busy), len(self._idle), self._starting
        s.sandboxes = s.busy + s.idle
        return PoolStats(**vars(s))

    async def start(self) -> None:
        """Start the reclaim loop and the provisioned sandboxes (waits until they are initialised)."""
        if self.config.snapstart and self.snapstart is None:  # publishing the version takes its snapshot
            snapshot = Snapshot(self.config, self.sink, memory_mode=self.memory_mode)
            try:
                await snapshot.take()
            except BaseException:
                await snapshot.close()
                raise
            self.snapstart = snapshot
        self._reaper = asyncio.create_task(self._reap_loop())
        await self._fill_provisioned()

    async def reconfigure(self) -> None:
        """Apply changed `reserved` / `provisioned` / `idle_s`: start or release provisioned sandboxes now."""
        keep = min(self.config.provisioned, self.cap)
        while len(self._provisioned) > keep:
            self._provisioned.pop()  # becomes an on-demand sandbox: reclaimed once idle
        if self._reaper is not None:
            self._reaper.cancel()
        self._reaper = asyncio.create_task(self._reap_loop())
        await self._fill_provisioned()

    async def drain(self, timeout_s: float) -> None:
        """Wait until no call runs or starts a sandbox here (at most `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while (self._busy or self._starting) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self._closed = True
        self.account.pools.discard(self)
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        sandboxes = list(self._idle) + list(self._busy)
        self._idle.clear()
        await asyncio.gather(*(s.kill() for s in sandboxes), return_exceptions=True)
        if self.snapstart is not None:
            await self.snapstart.close()

    async def _new_sandbox(self, provisioned: bool) -> tuple[Sandbox | None, InvokeResult | None]:
        self._starting += 1
        if self.snapstart is not None:  # restored from the snapshot (the host runtime: see snapstart.py)
            sandbox = self.snapstart.sandbox(provisioned)
        else:
            sandbox = Sandbox(self.config, self.sink, provisioned=provisioned, memory_mode=self.memory_mode,
                              run=self.run)
        try:
            error = await sandbox.start()
        except OSError as exc:  # the runtime could not be spawned at all (a bad command, no such directory)
            await sandbox.kill()
            error = InvokeResult("init_error", json.dumps({"errorType": "Runtime.InvalidEntrypoint",
                                                           "errorMessage": str(exc)}).encode(),
                                 error_type="Runtime.InvalidEntrypoint", cold_start=True)
            self.sandbox_log(f"Sandbox could not start: {exc}")
        except BaseException:
            await sandbox.kill()
            raise
        finally:
            self._starting -= 1
        if error is not None:
            self.stats.recycled += 1
            return None, error
        if provisioned:
            self._provisioned.add(sandbox)
        return sandbox, None

    async def _fill_provisioned(self) -> None:
        async with self._filling:  # the reaper and reconfigure() may both call this
            self._provisioned = {s for s in self._provisioned if s.alive}
            missing = min(self.config.provisioned, self.cap) - len(self._provisioned)
            missing = min(missing, self.cap - self._total())
            if missing <= 0 or self._closed:
                return
            results = await asyncio.gather(*(self._new_sandbox(True) for _ in range(missing)))
            for sandbox, _error in results:
                if sandbox is not None:
                    self._idle.append(sandbox)

    def _take_idle(self) -> Sandbox | None:
        while self._idle:
            sandbox = self._idle.pop()
            if sandbox.alive:
                return sandbox
            self.stats.recycled += 1
            asyncio.get_running_loop().create_task(sandbox.kill())
        return None

    def _over_rate(self) -> bool:
        """Whether this request exceeds 10 x the reserved concurrency per second ("Throttling function URLs")."""
        if self.config.reserved < 0:
            return False
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        if len(self._recent) >= RPS_PER_CONCURRENCY * self.config.reserved:
            return True
        self._recent.append(now)
        return False

    def _throttled(self, why: str, *, rate: bool = False) -> InvokeResult:
        self.stats.throttles += 1
        self.sandbox_log(f"Throttled: {why}")
        return InvokeResult("throttled", throttle_body(self.config.reserved >= 0, rate=rate),
                            error_type="TooManyRequestsException")

    async def invoke(self, event: bytes) -> InvokeResult:
        """Run one event: on a warm sandbox, a new one (cold start), or throttled."""
        self.stats.invocations += 1
        if self.config.reserved > 0 and self._over_rate():
            return self._throttled(f"over {RPS_PER_CONCURRENCY * self.config.reserved} requests per second "
                                   f"(10 x reserved concurrency {self.config.reserved})", rate=True)
        if self.config.reserved < 0 and self.account.full():
            return self._throttled(f"the account's unreserved concurrency ({self.account.unreserved_limit()}) "
                                   "is in use")
        sandbox = self._take_idle()
        if sandbox is None:
            if self._total() >= self.cap or self._closed:
                return self._throttled(f"{self._total()} sandboxes running, concurrency cap {self.cap}")
            sandbox, error = await self._new_sandbox(False)
            if sandbox is None:
                assert error is not None
                return error
            self.stats.cold_starts += 1
        self._busy.add(sandbox)
        try:
            result = await sandbox.invoke(event)
        finally:
            self._busy.discard(sandbox)
            if sandbox.alive and not self._closed:
                self._idle.append(sandbox)
            else:
                self.stats.recycled += 1
                if sandbox.alive:
                    await sandbox.kill()
        return result

    def sandbox_log(self, message: str) -> None:
        self.sink.write(self.config.log_group, "mlfn-local/scheduler", message)

    async def _reap_loop(self) -> None:
        interval = max(0.05, min(1.0, self.config.idle_s / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for sandbox in list(self._idle):
                expired = now - sandbox.last_used >= self.config.idle_s and sandbox not in self._provisioned
                if expired or not sandbox.alive:
                    self._idle.remove(sandbox)
                    if expired:
                        self.stats.reclaimed += 1
                        self.sandbox_log(f"Reclaimed idle sandbox {sandbox.id} after {self.config.idle_s:g} s")
                    await sandbox.kill()
            if self.config.provisioned:
                await self._fill_provisioned()
