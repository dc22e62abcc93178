"""Where a blocking model call runs: inline on the event loop, on a thread pool, or in a batch.

Handing a call to a pool thread and back costs tens of microseconds, and far more on a loaded machine; for a
model that answers in well under a millisecond that is most of the request. So `Scheduler.run` runs a small
body inline once recent calls have taken less than INLINE_BELOW_S on average (no longer than uvicorn itself
spends parsing a request); a large body, a slow model, or the first calls (nothing known yet) go to the pool,
so the loop never stalls for long. With `inline=True` (Lambda: one request per sandbox) every call is inline.

With dynamic batching (`mlfn.runtime.batching`) batches form from calls waiting on the pool together; a lone
request (nothing on the pool, no other request this turn of the loop or lately) still runs inline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .memory import LARGE_BYTES, release_soon
from .service import Reply

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from .batching import Batcher

INLINE_BELOW_S = 0.001  # service calls faster than this on average run on the event loop
INLINE_MAX_BODY = 64 * 1024
CONCURRENT_HOLD_S = 0.05  # with batching: how long concurrent arrivals keep calls on the pool


class Scheduler:
    """Runs service calls inline, on a pool sized to the CPU share (or the given executor), or batched."""

    def __init__(self, executor: Executor | None = None, *, inline: bool = False) -> None:
        self.executor = executor if executor is not None or inline else model_pool(pool_size())
        self._owns_executor = executor is None and not inline
        self.batcher: Batcher | None = None
        self.typical_s = float("inf")  # average service call so far; inf until the first is measured
        self._calls = 0
        self._on_pool = 0  # batched calls handed to the pool and not yet back
        self._started_this_turn = False  # a request already started in this turn of the event loop
        self._busy_until = 0.0  # until then, requests are taken to be concurrent (see _concurrent)
        self._release_due = False  # a large request was served: give memory back once its answer is out

    def attach_batcher(self, batcher: Batcher) -> None:
        """Batch from now on: batches form from requests waiting in pool threads at once, so the pool this
        scheduler made grows to hold a full batch."""
        if self.executor is None:
            return
        if self._owns_executor:
            old = self.executor
            self.executor = model_pool(max(pool_size(), min(batcher.max_rows, 64)))
            old.shutdown(wait=False)
        self.batcher = batcher

    def runs_inline(self, body_size: int) -> bool:
        """A call with a body this large would run inline now (and no batcher is attached)."""
        return self.batcher is None and (
            self.executor is None or (body_size <= INLINE_MAX_BODY and self.typical_s < INLINE_BELOW_S))

    async def run(self, fn: Callable[..., Reply], body: bytes, *args: Any) -> Reply:
        """Run `fn(body, *args)`: on the pool, in a batch, or inline when it is known to be quick."""
        batcher = self.batcher
        inline = self.executor is None or (len(body) <= INLINE_MAX_BODY and self.typical_s < INLINE_BELOW_S)
        if batcher is None and inline:
            return self.measured(fn, body, *args)
        import asyncio  # here, not at the top: the Lambda handler runs inline and never imports it

        loop = asyncio.get_running_loop()
        if batcher is not None:
            # A lone request would be a batch of one after a hand-off: inline instead. Only while the batcher is
            # idle, so the event loop never waits on a batch run by a pool thread (a call whose await was
            # cancelled leaves the pool count while its thread still runs).
            if inline and self._on_pool == 0 and not self._concurrent(loop) and batcher.idle:
                return self.measured(fn, body, *args)
            ticket = batcher.expect()
            self._on_pool += 1
            try:
                return await loop.run_in_executor(  # type: ignore[no-any-return]
                    self.executor, batcher.call, ticket, self.measured, fn, body, *args)
            finally:
                self._on_pool -= 1
                batcher.withdraw(ticket)  # a call cancelled before its thread started must not be waited for
        return await loop.run_in_executor(self.executor, self.measured, fn, body, *args)

    def _concurrent(self, loop: Any) -> bool:
        """Requests are arriving together: two started in one turn of the event loop (as when many connections
        are ready at once) now or in the last CONCURRENT_HOLD_S seconds."""
        now = time.perf_counter()
        if self._started_this_turn:
            self._busy_until = now + CONCURRENT_HOLD_S
        else:
            self._started_this_turn = True
            loop.call_soon(self._next_turn)
        return now < self._busy_until

    def _next_turn(self) -> None:
        self._started_this_turn = False

    def measured(self, fn: Callable[..., Reply], body: bytes, *args: Any) -> Reply:
        """`fn(body, *args)`, its duration added to the running average that decides what runs inline."""
        started = time.perf_counter()
        large = len(body) >= LARGE_BYTES
        try:
            reply = fn(body, *args)
            large = large or len(reply.body) >= LARGE_BYTES
            return reply
        finally:
            if large:
                self._release_due = True
            # The mean of the first 20 calls, then a moving average, of durations capped at 4x the threshold, so
            # that one call preempted by another process cannot send the next many to the pool. A lost update
            # between threads is harmless.
            took = min(time.perf_counter() - started, 4 * INLINE_BELOW_S)
            self._calls += 1
            typical = self.typical_s if self._calls > 1 else took
            self.typical_s = typical + (took - typical) * max(0.05, 1 / self._calls)

    def release_if_due(self) -> None:
        """After a large request's answer is out: give its memory back to the system (`memory.release_soon`)."""
        if self._release_due:
            self._release_due = False
            release_soon()

    def shutdown(self) -> None:
        """Stop the thread pool this scheduler made."""
        if self._owns_executor and self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)


def model_pool(workers: int) -> Executor:
    """The threads model calls run on (imported here: the Lambda handler runs inline and never needs them)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlfn-model")


def pool_size() -> int:
    from .cpu_share import cpu_share

    return cpu_share().threads
