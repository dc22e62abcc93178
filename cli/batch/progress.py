"""Progress while a batch runs: records done, records per second and the time left (from the bytes of input read
against the input's total size, since a streamed input's record count is not known before its end)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Progress:
    def __init__(self, total_bytes: int, say: Callable[[str], None] | None, every_s: float = 1.0) -> None:
        self.total_bytes, self.say, self.every_s = max(total_bytes, 1), say, every_s
        self.records = self.failed = self.bytes_done = 0
        self.started = time.perf_counter()
        self._shown = self.started

    def add(self, records: int, failed: int, bytes_done: int) -> None:
        """Count one call's records; `bytes_done` is the input read so far over all objects."""
        self.records += records
        self.failed += failed
        self.bytes_done = bytes_done
        now = time.perf_counter()
        if self.say is not None and now - self._shown >= self.every_s:
            self._shown = now
            self.say(self.line(now))

    def rate(self, now: float | None = None) -> float:
        elapsed = (now or time.perf_counter()) - self.started
        return self.records / elapsed if elapsed > 0 else 0.0

    def eta_s(self, now: float | None = None) -> float | None:
        elapsed = (now or time.perf_counter()) - self.started
        if not self.bytes_done or elapsed <= 0:
            return None
        return max(0.0, (self.total_bytes - self.bytes_done) * elapsed / self.bytes_done)

    def line(self, now: float | None = None) -> str:
        eta = self.eta_s(now)
        left = "?" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
        return (f"  {self.records:,} records ({self.failed:,} failed), {self.rate(now):,.0f} records/s, "
                f"{100 * self.bytes_done / self.total_bytes:.0f}% of the input, about {left} left")
