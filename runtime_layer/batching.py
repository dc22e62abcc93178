"""Dynamic batching for the container targets: requests that arrive together run as one `session.run`.

Enabled by `[batching] max_batch_size > 1` in `mlfn.toml` for a model whose inputs and tensor outputs all
have a dynamic first dimension (`spec.batchable`); the server (`python -m mlfn.runtime.server`) installs it,
Lambda never does (one request per sandbox).

How it runs. Each request is decoded and checked by `InferenceService` in a pool thread as before (bad input
is answered on its own and never reaches a batch); the checked feeds then go to `Batcher.run`, which stands
in for `Model.run_checked` (`InferenceService` calls it in place of the model's once `install` set
`service.batcher`). There is no extra worker thread: the first caller that finds the model idle
becomes the batch's *leader*, the others queue. The leader waits for company only while requests it was
told about (`expect`) are still being decoded, and never longer than `max_wait_ms`; then it takes the
queued requests with the same shape signature (input dtypes, non-batch dimensions and requested outputs),
up to `max_batch_size` rows in all, concatenates their feeds along the first axis, runs them once, splits
every output back by each request's row count (tensors along their first axis, non-tensor outputs such as
ZipMap lists by slicing) and wakes each member with its own answer. Then it hands leadership to the next
queued request, if any. A single caller (concurrency 1) so pays two uncontended lock operations and no
thread hand-off or wait.

A batch whose run fails (a model error, onnxruntime refusing the stacked input) or whose outputs cannot be
split by rows is run again member by member, so one bad request gets its own error and the others their
answers. Metrics: the service's observer sees each real run (its seconds and rows, so `mlfn_batch_rows` is
the batch size in rows) and `metrics.batch(requests)` the requests each run served.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .service import InferenceService

Feeds = dict[str, np.ndarray]
Outputs = dict[str, Any]
RunChecked = Callable[[Feeds, Sequence[str]], Outputs]


class _Unsplittable(Exception):
    """An output whose first dimension is not the batch's rows: the batch must run member by member."""


class Ticket:
    """One request announced to a Batcher by `expect`, counted as coming until it reaches `run` or is withdrawn."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


class _Item:
    """One caller's feeds, and where its answer (or error) lands."""

    __slots__ = ("done", "error", "feeds", "key", "lead", "names", "result", "rows", "wake")

    def __init__(self, feeds: Feeds, names: Sequence[str], rows: int, key: Any) -> None:
        self.feeds, self.names, self.rows, self.key = feeds, names, rows, key
        self.wake = threading.Lock()
        self.wake.acquire()  # released by whoever finishes this item or makes it the leader
        self.result: Outputs | None = None
        self.error: BaseException | None = None
        self.done = False
        self.lead = False


def signature(feeds: Feeds, names: Sequence[str]) -> tuple[int, Any] | None:
    """(rows, key): requests with equal keys can be stacked; None when this request cannot join a batch."""
    rows = -1
    parts: list[Any] = [tuple(names)]
    for name, array in feeds.items():
        if array.ndim == 0 or array.dtype == object:
            return None
        if rows < 0:
            rows = array.shape[0]
        elif array.shape[0] != rows:
            return None
        parts.append((name, array.dtype.str, array.shape[1:]))
    if rows <= 0:
        return None
    return rows, tuple(parts)


def split(outputs: Outputs, rows: Sequence[int]) -> list[Outputs]:
    """Each member's outputs from a stacked run: tensors along their first axis, lists by slicing."""
    total = sum(rows)
    bounds = np.cumsum(rows)[:-1].tolist()
    parts: list[Outputs] = [{} for _ in rows]
    for name, value in outputs.items():
        if isinstance(value, np.ndarray):
            if value.ndim == 0 or value.shape[0] != total:
                raise _Unsplittable(name)
            pieces: Sequence[Any] = np.split(value, bounds)
        elif isinstance(value, list) and len(value) == total:
            starts = [0, *bounds]
            pieces = [value[a:a + n] for a, n in zip(starts, rows, strict=True)]
        else:
            raise _Unsplittable(name)
        for part, piece in zip(parts, pieces, strict=True):
            part[name] = piece
    return parts


class Batcher:
    """Combines concurrent `run_checked` calls on one model into batched runs (see the module's docs)."""

    def __init__(
        self,
        run_checked: RunChecked,
        *,
        max_rows: int,
        max_wait_s: float,
        observer: Callable[[float, int], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._run_checked = run_checked
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self._observer = observer
        self._on_batch = on_batch
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._busy = False
        self._expected = 0  # callers announced by `expect` that have not reached `run` (or finished) yet
        self._local = threading.local()
        self.batches = 0  # runs made, and requests they served: for tests and logs
        self.requests = 0

    # ------------------------------------------------------------------ announcing callers

    def expect(self) -> Ticket:
        """A request is on its way (called before it is handed to a pool thread): a leader may wait for it.

        The ticket goes to `call`; whoever handed the request on calls `withdraw(ticket)` when the hand-off
        ends, so a call cancelled before it started no longer counts as coming.
        """
        with self._lock:
            self._expected += 1
        return Ticket()

    def withdraw(self, ticket: Ticket) -> None:
        """The request behind `ticket` will not (or will no longer) reach `run`; a no-op once it has."""
        with self._lock:
            if self._settle(ticket):
                self._arrived.notify()

    def _settle(self, ticket: Ticket) -> bool:
        """Stop counting `ticket` as coming (call with the lock held); False when it already was."""
        if not ticket.open:
            return False
        ticket.open = False
        self._expected -= 1
        return True

    def call(self, ticket: Ticket, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` for a request announced by `expect`, in the thread that will call `run`."""
        self._local.ticket = ticket
        try:
            return fn(*args)
        finally:
            self._local.ticket = None
            self.withdraw(ticket)  # it never reached `run` (bad input, hooks, a non-batched path)

    @property
    def idle(self) -> bool:
        """No batch is running or queued: a call now would lead at once, never wait for another thread."""
        return not self._busy

    # ------------------------------------------------------------------ running

    def run(self, feeds: Feeds, names: Sequence[str]) -> Outputs:
        """What `Model.run_checked` does, for checked feeds, batched with concurrent callers."""
        sig = signature(feeds, names)
        ticket: Ticket | None = getattr(self._local, "ticket", None)
        self._local.ticket = None
        if sig is None:
            if ticket is not None:
                self.withdraw(ticket)
            return self._measured(feeds, names, 1)
        item = _Item(feeds, names, sig[0], sig[1])
        with self._lock:
            if ticket is not None:
                self._settle(ticket)
            self._queue.append(item)
            self._queued_rows += item.rows
            if self._busy:
                self._arrived.notify()
            else:
                self._busy = item.lead = True
        if not item.lead:
            item.wake.acquire()
        if item.lead:
            self._lead()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _lead(self) -> None:
        """Run one batch headed by the first queued item, then pass leadership on."""
        try:
            batch = self._gather()
            self._run_batch(batch)
        finally:
            with self._lock:
                if self._queue:
                    head = self._queue[0]
                    head.lead = True
                    head.wake.release()
                else:
                    self._busy = False

    def _gather(self) -> list[_Item]:
        """Wait (at most max_wait) while announced requests are still coming, then take a batch off the queue."""
        with self._lock:
            if self.max_wait_s > 0 and self._expected > 0 and self._queued_rows < self.max_rows:
                deadline = time.perf_counter() + self.max_wait_s
                while self._expected > 0 and self._queued_rows < self.max_rows:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0 or not self._arrived.wait(remaining):
                        break
            head = self._queue.popleft()
            batch, rows, kept = [head], head.rows, deque[_Item]()
            while self._queue:
                item = self._queue.popleft()
                if item.key == head.key and rows + item.rows <= self.max_rows:
                    batch.append(item)
                    rows += item.rows
                else:
                    kept.append(item)
            self._queue = kept
            self._queued_rows -= rows
        return batch

    def _run_batch(self, batch: list[_Item]) -> None:
        head = batch[0]
        try:
            if len(batch) == 1:
                self._finish(head, result=self._measured(head.feeds, head.names, 1))
                return
            try:
                stacked = {name: np.concatenate([m.feeds[name] for m in batch]) for name in head.feeds}
                outputs = self._measured(stacked, head.names, len(batch))
                parts = split(outputs, [m.rows for m in batch])
            except Exception:  # one member may be to blame: each runs alone and gets its own answer
                for member in batch:
                    try:
                        self._finish(member, result=self._measured(member.feeds, member.names, 1))
                    except Exception as exc:
                        self._finish(member, error=exc)
                return
            for member, part in zip(batch, parts, strict=True):
                self._finish(member, result=part)
        except BaseException as exc:
            for member in batch:
                if not member.done:
                    self._finish(member, error=exc)
            if not isinstance(exc, Exception):
                raise

    def _measured(self, feeds: Feeds, names: Sequence[str], requests: int) -> Outputs:
        started = time.perf_counter()
        outputs = self._run_checked(feeds, names)
        if self._observer is not None:
            first = next(iter(feeds.values()))
            self._observer(time.perf_counter() - started, int(first.shape[0]) if first.ndim else 1)
        if self._on_batch is not None:
            self._on_batch(requests)
        self.batches += 1
        self.requests += requests
        return outputs

    def _finish(self, item: _Item, *, result: Outputs | None = None, error: BaseException | None = None) -> None:
        item.result, item.error, item.done = result, error, True
        if not item.lead:
            item.wake.release()


def batching_enabled(service: InferenceService) -> bool:
    """`[batching] max_batch_size > 1` and a model whose inputs and tensor outputs all have a batch dimension."""
    return service.spec.settings.batching.max_batch_size > 1 and service.spec.batchable and service.model.batched


def install(service: InferenceService, on_batch: Callable[[int], None] | None = None) -> Batcher | None:
    """Batch the service's model runs when its settings ask for it; the Batcher, or None when it does not apply.

    The batcher becomes `service.batcher` (the service runs its model through it), and the service's observer
    moves to the batcher (so metrics see real runs, not each request's share of one).
    """
    if not batching_enabled(service):
        return None
    settings = service.spec.settings.batching
    model = service.model
    batcher = Batcher(model.run_checked, max_rows=settings.max_batch_size, max_wait_s=settings.max_wait_ms / 1000,
                      observer=service.observer, on_batch=on_batch)
    service.observer = None
    service.batcher = batcher
    return batcher
