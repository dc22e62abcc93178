"""Where sandbox output goes: one log group per function and one stream per sandbox, as in CloudWatch Logs.

`FileLogSink` appends JSON lines (`{"timestamp": ms, "message": ...}`) to `<state>/logs/<group>/<stream>.jsonl`, so
`mlfn logs --local` works even without the control plane. The control plane may pass a `forward` callable to also
put each event into moto's CloudWatch Logs (its `put_log_events`).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

Forward = Callable[[str, str, int, str], None]  # (group, stream, timestamp ms, message)


class LogSink(Protocol):
    def write(self, group: str, stream: str, message: str) -> None: ...


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "_"


class FileLogSink:
    """Append log events to files under `root`; optionally forward them and echo them to stderr."""

    def __init__(self, root: Path, *, forward: Forward | None = None, echo: bool = False) -> None:
        self.root = root
        self.forward = forward
        self.echo = echo
        self._lock = threading.Lock()

    def path(self, group: str, stream: str) -> Path:
        return self.root / _safe(group) / f"{_safe(stream)}.jsonl"

    def write(self, group: str, stream: str, message: str) -> None:
        now = int(time.time() * 1000)
        path = self.path(group, stream)
        line = json.dumps({"timestamp": now, "message": message}) + "\n"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(line)
        if self.echo:
            print(f"[{group}] {message}", file=sys.stderr, flush=True)
        if self.forward is not None:
            try:
                self.forward(group, stream, now, message)
            except Exception as exc:  # a broken forwarder must not break invocations
                print(f"mlfn local: could not forward a log event: {exc}", file=sys.stderr)

    def read(self, group: str) -> list[dict[str, object]]:
        """Every event of a group, oldest first (for `mlfn logs --local` and tests)."""
        events: list[dict[str, object]] = []
        folder = self.root / _safe(group)
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            for line in path.read_text(encoding="utf-8").splitlines():
                event = json.loads(line)
                event["logStreamName"] = path.stem
                events.append(event)
        events.sort(key=lambda e: e["timestamp"])  # type: ignore[arg-type,return-value]
        return events
