"""Lambda SnapStart in the emulator: init once when the version is published, new sandboxes restored from it.

The Runtime API lifecycle is AWS's ("Implementing SnapStart hooks for container images"): the snapshot sandbox
runs with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start, so awslambdaric imports the handler (init), runs the
before-snapshot hooks and calls `GET /2018-06-01/runtime/restore/next`; that call is the snapshot point. Each new
sandbox is restored from it: the call answers, awslambdaric runs the after-restore hooks (a failure goes to
`POST .../restore/error`) and polls `/invocation/next`. Its first REPORT line carries `Restore Duration` and
`Billed Restore Duration` instead of `Init Duration`, and the snapshot's init is logged as an INIT_REPORT
("Monitoring for Lambda SnapStart").

Publishing fails, as on AWS, for an image whose runtime neither calls `/restore/next` nor carries the label
`com.amazonaws.lambda.feature.snapstart=Allow`. An image with the label only is snapshotted after its init; the
stand-in cannot restore a runtime that did not stop at `/restore/next`, so its sandboxes initialise afresh (as do
those of an entry point other than `python -m awslambdaric <handler>`, e.g. a chroot: their `/restore/next` is
answered at once).

The restore itself is a documented stand-in (`restore_point`): the snapshot sandbox's process forks a copy per
new sandbox, so init is not run again. CRIU is not installed on the machine (`apt-cache policy criu`: a candidate,
not installed; not tried), so no real checkpoint is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from . import restore_point
from .config import FunctionConfig
from .logsink import LogSink
from .memory import limit_memory
from .sandbox import InvokeResult, Sandbox

SNAPSTART_LABEL = "com.amazonaws.lambda.feature.snapstart"
AFTER_RESTORE_LIMIT_S = 10.0  # after-restore hooks longer than this time the Restore phase out (troubleshooting page)


class SnapStartPublishError(Exception):
    """Publishing a SnapStart version failed: its snapshot could not be taken."""


def restore_point_command(config: FunctionConfig) -> list[str] | None:
    """The sandbox command that stops at the snapshot point as a zygote: awslambdaric's own `python -m awslambdaric
    <handler>` run through `restore_point`; None for any other entry point (it is run as it is)."""
    command = list(config.command) or [sys.executable, "-m", "awslambdaric", config.handler]
    if len(command) >= 4 and command[1:3] == ["-m", "awslambdaric"]:
        return [command[0], str(Path(restore_point.__file__)), *command[3:]]
    return None


class SnapshotSandbox(Sandbox):
    """The sandbox a version's snapshot is taken in: init with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start.

    `in_place`: a sandbox of a version whose snapshot cannot be forked; its runtime's `/restore/next` is answered
    at once (restored where it stands), so it runs the after-restore hooks and serves."""

    def __init__(self, *args: Any, in_place: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_place = in_place

    @property
    def initialization_type(self) -> str:
        return "snap-start"

    def _command(self) -> list[str]:
        return restore_point_command(self.config) or super()._command()

    def _init_done(self) -> tuple[Coroutine[Any, Any, Any], ...]:
        return (*super()._init_done(), self._snapshot_point())

    async def _snapshot_point(self) -> None:
        await self.api.restore_calls.get()
        if self.in_place:  # restored in place: the init phase ends with the after-restore hooks, at GET /next
            self.api.restore({})
            await self.api.ready.wait()
            return
        self.at_snapshot_point = True

    def _init_finished(self) -> bool:
        return getattr(self, "at_snapshot_point", False)


class Snapshot:
    """One published SnapStart version: its snapshot sandbox, and the sandboxes restored from it."""

    def __init__(self, config: FunctionConfig, sink: LogSink, *, memory_mode: str = "auto") -> None:
        self.config = config
        self.sink = sink
        self.memory_mode = memory_mode
        self.zygote = SnapshotSandbox(config, sink, memory_mode=memory_mode)
        self.forks = False  # the runtime stopped at /restore/next: sandboxes are forked from it
        self._lock = asyncio.Lock()
        self._dir = tempfile.mkdtemp(prefix="mlfn-snapstart-")

    async def take(self) -> None:
        """Run init and the before-snapshot hooks; raise `SnapStartPublishError` when no snapshot can be taken."""
        error = await self.zygote.start()
        z = self.zygote
        if error is not None:
            raise SnapStartPublishError(f"Init of the SnapStart version failed ({error.error_type}): "
                                        f"{error.payload.decode('utf-8', 'replace')}")
        stopped = getattr(z, "at_snapshot_point", False)
        self.forks = stopped and restore_point_command(self.config) is not None
        labelled = self.config.labels.get(SNAPSTART_LABEL, "").lower() == "allow"
        if not stopped and not labelled:
            await z.kill()
            raise SnapStartPublishError(
                f"Publishing failed: SnapStart is on but the image's runtime did not call "
                f"GET /2018-06-01/runtime/restore/next after init and the image has no label "
                f"{SNAPSTART_LABEL}=Allow (AWS: 'Implementing SnapStart hooks for container images')")
        z.log(f"INIT_REPORT Init Duration: {z.init_ms:.2f} ms\tPhase: init\tStatus: success")
        if not self.forks:  # label only, or an entry point without restore_point: sandboxes initialise afresh
            await z.kill()

    def sandbox(self, provisioned: bool = False) -> Sandbox:
        """A new sandbox of the version: restored from the snapshot, or (label-only images) initialised afresh."""
        if self.forks:
            return RestoredSandbox(self, provisioned=provisioned)
        return SnapshotSandbox(self.config, self.sink, provisioned=provisioned, memory_mode=self.memory_mode,
                               in_place=True)

    async def restore(self, runtime_api: str, log_path: str) -> tuple[int, float]:
        """Fork the snapshot's process into a sandbox whose Runtime API is `runtime_api`; its pid and how long the
        fork took in milliseconds."""
        async with self._lock:
            if not self.zygote.alive:
                raise SnapStartPublishError("the SnapStart snapshot's process is gone")
            started = time.perf_counter()
            self.zygote.api.restore({restore_point.RUNTIME_API_HEADER: runtime_api,
                                     restore_point.LOG_HEADER: log_path})
            pid = await asyncio.wait_for(self.zygote.api.restore_calls.get(), AFTER_RESTORE_LIMIT_S)
            return pid, (time.perf_counter() - started) * 1000

    def fifo(self, name: str) -> str:
        path = os.path.join(self._dir, name)
        os.mkfifo(path, 0o600)
        return path

    async def close(self) -> None:
        await self.zygote.kill()
        with contextlib.suppress(OSError):
            for name in os.listdir(self._dir):
                os.unlink(os.path.join(self._dir, name))
            os.rmdir(self._dir)


class ForkedProcess:
    """A restored sandbox's process: a child of the snapshot's process, so known by pid (and a pidfd) only."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.killed = False
        self.stdout: asyncio.StreamReader | None = None
        self._exited = asyncio.Event()
        self._pidfd = -1
        self._keep_open = -1

    async def attach(self, log_fifo: str, read_fd: int) -> None:
        loop = asyncio.get_running_loop()
        self._keep_open = os.open(log_fifo, os.O_WRONLY | os.O_NONBLOCK)  # no EOF before the process is gone
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0))
        self.stdout = reader
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self._gone()
            return
        loop.add_reader(self._pidfd, self._gone)

    def _gone(self) -> None:
        if self._pidfd >= 0:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        if self._keep_open >= 0:
            os.close(self._keep_open)
            self._keep_open = -1
        # Its parent (the snapshot's process) reaps it, so its exit status is not known here.
        self.returncode = -signal.SIGKILL if self.killed else 1
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


class RestoredSandbox(Sandbox):
    """A sandbox restored from a version's snapshot: no init phase, a Restore phase instead."""

    def __init__(self, snapshot: Snapshot, *, provisioned: bool = False) -> None:
        super().__init__(snapshot.config, snapshot.sink, provisioned=provisioned, memory_mode=snapshot.memory_mode)
        self.snapshot = snapshot
        self.billed_restore_ms = 0.0

    @property
    def initialization_type(self) -> str:
        return "snap-start"

    async def start(self) -> InvokeResult | None:
        started = time.perf_counter()
        await self.api.start()
        log_fifo = self.snapshot.fifo(self.id)
        read_fd = os.open(log_fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.log(f"RESTORE_START Runtime Version: mlfn-local python{sys.version_info.major}."
                 f"{sys.version_info.minor}\tRestored from: {self.snapshot.zygote.log_stream}")
        try:
            pid, fork_ms = await self.snapshot.restore(self.api.address, log_fifo)
        except (TimeoutError, SnapStartPublishError) as exc:
            os.close(read_fd)
            await self.kill()
            return self._failed("SnapStartTimeoutException",
                                f"Lambda couldn't restore the snapshot within the timeout limit. ({exc})")
        process = ForkedProcess(pid)
        self.process = process  # type: ignore[assignment]
        await process.attach(log_fifo, read_fd)
        self.guard = limit_memory(pid, self.config.memory_mb * 1024 * 1024, f"mlfn-{self.id[:12]}",
                                  prefer=self.memory_mode)
        self._tasks = [asyncio.create_task(self._pump_output()), asyncio.create_task(self._wait_exit())]
        waits = {asyncio.create_task(w) for w in (self.api.ready.wait(), self.api.init_failed.wait(),
                                                   self._exited.wait())}
        try:
            await asyncio.wait(waits, timeout=AFTER_RESTORE_LIMIT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        self.restore_ms = (time.perf_counter() - started) * 1000
        self.billed_restore_ms = max(0.0, self.restore_ms - fork_ms)  # after-restore hooks, not the restore itself
        self.init_ms = 0.0
        status = "success" if self.api.ready.is_set() else "error"
        self.log(f"RESTORE_REPORT Restore Duration: {self.restore_ms:.2f} ms\tStatus: {status}")
        if self.api.ready.is_set():
            return None
        if self.api.init_error is not None:
            doc = self.api.init_error
            await self.kill()
            return self._failed(str(doc.get("errorType", "Runtime.AfterRestoreError")),
                                str(doc.get("errorMessage", "")))
        await self.kill()
        return self._failed("SnapStartTimeoutException", "Lambda couldn't restore the snapshot within the timeout "
                                                        "limit." if not self._exited.is_set() else
                            "Runtime exited during the Restore phase")

    async def kill(self) -> None:
        if isinstance(self.process, ForkedProcess):
            self.process.killed = True
        await super().kill()

    def _failed(self, error_type: str, message: str) -> InvokeResult:
        import json

        body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
        return InvokeResult("init_error", body, error_type=error_type, cold_start=True, restore_ms=self.restore_ms)

    def _cold_start_fields(self) -> str:
        return (f"\tRestore Duration: {self.restore_ms:.2f} ms"
                f"\tBilled Restore Duration: {math.ceil(round(self.billed_restore_ms, 6))} ms")
