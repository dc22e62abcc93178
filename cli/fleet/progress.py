"""Progress of a fleet run, readable on a terminal and in a CI log.

Every line names its model (`[iris] - pushing ...`). On a terminal the fleet's tally (`[fleet] 3/10 done: ...`)
stays on the last line, redrawn in place; when stderr is not a terminal (CI, a pipe, a file) nothing is redrawn:
no carriage returns, no escape codes, and the tally is a plain line each time a model finishes.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Any, TextIO

CLEAR_LINE = "\r\033[K"
SHOWN_EVENTS = ("_FAILED", "ROLLBACK_IN_PROGRESS")


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, *, tty: bool | None = None,
                 verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total, self.verbose = total, verbose
        self.results: Counter[str] = Counter()
        self._lock = threading.Lock()

    def tally(self) -> str:
        done = sum(self.results.values())
        parts = ", ".join(f"{n} {what}" for what, n in sorted(self.results.items()))
        return f"[fleet] {done}/{self.total} done" + (f": {parts}" if parts else "")

    def _write(self, line: str) -> None:
        with self._lock:
            if self.tty:
                self.stream.write(f"{CLEAR_LINE}{line}\n{self.tally()}")
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def say(self, model: str, text: str) -> None:
        """A step line of one model (the lines `mlfn deploy` prints for one model)."""
        self._write(f"[{model}] {text}")

    def event(self, model: str, event: Any) -> None:
        """A stack event: failures and rollbacks always, the rest with --verbose."""
        if self.verbose or str(getattr(event, "status", "")).endswith(SHOWN_EVENTS):
            self.say(model, event.line().strip())

    def finished(self, model: str, result: str, seconds: float) -> None:
        with self._lock:
            self.results[result] += 1
        self._write(f"[{model}] {result} in {seconds:.1f}s")
        if not self.tty:
            self._write(self.tally())

    def close(self) -> None:
        with self._lock:
            if self.tty:
                self.stream.write(CLEAR_LINE)
                self.stream.flush()
