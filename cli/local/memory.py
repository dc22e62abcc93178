"""Hold a sandbox to its function's memory setting, the way Lambda does: a hard cap on resident memory.

Lambda's cap is a cgroup on the execution environment, so a function that grows past its memory setting is killed
(`Runtime.OutOfMemory`) while the virtual reservations of onnxruntime and numpy cost nothing. `RLIMIT_AS` is the wrong
tool here: a process that has imported onnxruntime and loaded a model maps about 3x its resident memory (measured:
the iris sandbox, 208 MB VmSize for 68 MB RSS), so a 128 MB function would fail to start. In order of preference:

1. a cgroup v2 child with `memory.max` (and `memory.swap.max = 0`) when our cgroup is writable and delegates `memory`;
2. a cgroup v1 memory child with `memory.limit_in_bytes` (and `memsw` when present) when that hierarchy is writable;
3. otherwise a watchdog that reads the process's resident set from /proc every 50 ms and kills it past the limit
   (looser: a fast allocation can overshoot between two reads, but the outcome is the same error).

`MemoryGuard.mode` says which one is in force; `mlfn local status` can show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
WATCH_INTERVAL_S = 0.05


def _own_cgroup(controller: str | None) -> str | None:
    """Our cgroup path in the v2 hierarchy (controller None) or the v1 hierarchy of `controller`."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        if controller is None and _id == "0" and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return None


def _v2_base(controller: str = "memory") -> Path | None:
    """Our cgroup v2 directory when it delegates `controller` to its children (`mlfn plan` asks for "cpu")."""
    path = _own_cgroup(None)
    if path is None:
        return None
    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        base = mount / path.lstrip("/")
        control = base / "cgroup.subtree_control"
        if (mount / "cgroup.controllers").exists() and control.exists() and controller in control.read_text().split():
            return base
    return None


def _v1_base(controller: str = "memory", probe: str = "memory.limit_in_bytes") -> Path | None:
    """Our cgroup in the v1 hierarchy of `controller`, when it has the file `probe`."""
    path = _own_cgroup(controller)
    if path is None:
        return None
    base = CGROUP_ROOT / controller / path.lstrip("/")
    return base if (base / probe).exists() else None


class MemoryGuard:
    """The memory cap of one sandbox process."""

    def __init__(self, mode: str, cgroup: Path | None = None) -> None:
        self.mode = mode  # "cgroup2" | "cgroup1" | "watchdog"
        self.cgroup = cgroup
        self._watch: asyncio.Task[None] | None = None
        self._watch_killed = False

    def oom_killed(self) -> bool:
        """Whether the cap killed the process."""
        if self._watch_killed:
            return True
        if self.cgroup is None:
            return False
        name = "memory.events" if self.mode == "cgroup2" else "memory.oom_control"
        with contextlib.suppress(OSError):
            for line in (self.cgroup / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def release(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()

    async def _watchdog(self, pid: int, limit: int) -> None:
        status = Path(f"/proc/{pid}/status")
        while True:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:") and int(line.split()[1]) * 1024 > limit:
                        self._watch_killed = True
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                        return
            except OSError:
                return
            await asyncio.sleep(WATCH_INTERVAL_S)


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _try_cgroup(base: Path, mode: str, name: str, pid: int, limit: int) -> MemoryGuard | None:
    group = base / name
    try:
        group.mkdir(exist_ok=True)
        if mode == "cgroup2":
            _write(group / "memory.max", str(limit))
            with contextlib.suppress(OSError):
                _write(group / "memory.swap.max", "0")
        else:
            _write(group / "memory.limit_in_bytes", str(limit))
            with contextlib.suppress(OSError):
                _write(group / "memory.memsw.limit_in_bytes", str(limit))
        _write(group / "cgroup.procs", str(pid))
    except OSError:
        with contextlib.suppress(OSError):
            group.rmdir()
        return None
    return MemoryGuard(mode, group)


def limit_memory(pid: int, limit_bytes: int, name: str, *, prefer: str = "auto") -> MemoryGuard:
    """Cap `pid` at `limit_bytes` of resident memory; `name` names its cgroup. Call right after spawning it.

    `prefer="watchdog"` skips the cgroups (tests use it to exercise the fallback).
    """
    if prefer == "auto":
        for base, mode in ((_v2_base(), "cgroup2"), (_v1_base(), "cgroup1")):
            if base is not None and os.access(base, os.W_OK):
                guard = _try_cgroup(base, mode, name, pid, limit_bytes)
                if guard is not None:
                    return guard
    guard = MemoryGuard("watchdog")
    guard._watch = asyncio.get_running_loop().create_task(guard._watchdog(pid, limit_bytes))
    return guard
