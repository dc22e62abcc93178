"""Background processes of the emulator (control plane, data plane): start one and wait until it is ready, check a
pid, stop one. Both planes lead their own session and write their output to a log file in the state directory."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class StartError(RuntimeError):
    """The process exited before it was ready, or was not ready in time (the message says which)."""


def alive(pid: int) -> bool:
    """Whether `pid` is a running process (our own exited children are reaped: a zombie still answers kill 0)."""
    if pid <= 0:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spawn_until_ready(argv: Sequence[str], log_path: Path, ready: Callable[[], T | None], *, what: str,
                      timeout_s: float) -> T:
    """Start `argv` in its own session (output appended to `log_path`) and poll `ready()` until it returns a value.

    Raises `StartError("<what> exited (...)")` with the log's last line, or `StartError("<what> did not start
    within ...")` after terminating the process."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = ready()
        if value is not None:
            return value
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise StartError(f"{what} exited ({proc.returncode}): {' '.join(tail)}")
        time.sleep(0.1)
    stop(proc, timeout_s=5)
    raise StartError(f"{what} did not start within {timeout_s:.0f}s (see {log_path})")


def stop(proc: subprocess.Popen[Any], *, timeout_s: float) -> int:
    """SIGTERM a child, wait up to `timeout_s` for it to exit, else SIGKILL it; reap it and return its exit code."""
    proc.terminate()
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


def terminate(pid: int, *, timeout_s: float, group: bool = False) -> None:
    """SIGTERM `pid`, wait up to `timeout_s` for it to exit, then SIGKILL it (its whole process group if `group`)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:  # it exited since the caller looked
        return
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            (os.killpg if group else os.kill)(pid, signal.SIGKILL)
