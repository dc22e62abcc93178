"""Remember the long-lived processes the data plane starts, so a data plane that was killed outright does not leave
them running: the next start ends what the last one recorded (and only if it is still that same process).

Lambda sandboxes need no record: they exit by themselves once their Runtime API server is gone. Container instances
(`serve` processes) would keep their port forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

from .emulator_state import read_json, write_json


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a recorded process from a reused pid)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


class ChildRegistry:
    """A JSON file of {pid: start ticks} for the processes this data plane runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, int]:
        data = read_json(self.path)
        return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def record(self, pid: int) -> None:
        ticks = _start_ticks(pid)
        if ticks is None:
            return
        with self._lock:
            children = self._load()
            children[str(pid)] = ticks
            write_json(self.path, children)

    def forget(self, pid: int) -> None:
        with self._lock:
            children = self._load()
            if children.pop(str(pid), None) is not None:
                write_json(self.path, children)

    def reap(self) -> int:
        """End the recorded processes (their whole process groups) that still run; returns how many."""
        ended = 0
        with self._lock:
            for pid_text, ticks in self._load().items():
                pid = int(pid_text)
                if _start_ticks(pid) == ticks:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                        ended += 1
            write_json(self.path, {})
        return ended
