"""One Lambda sandbox: an OS process running the real `awslambdaric` against its own Runtime API server.

A sandbox is created cold (`start`: spawn, run the handler module's import = the init phase, wait for the first
`GET /next`), then serves one invocation at a time (`invoke`). A timeout, a crash, an init failure or the memory cap
ends it; the pool replaces it. Output goes to the function's log group with Lambda's START/END/REPORT lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..packaging.layer import MODEL_PREFIX
from ..plan.measure import CpuLimit, lambda_cpu_cap
from .config import FunctionConfig
from .image_rootfs import ImageRun
from .logsink import LogSink
from .memory import MemoryGuard, limit_memory
from .runtime_api import Invocation, Outcome, RuntimeApi

INIT_LIMIT_S = 10.0  # Lambda's init phase limit for on-demand sandboxes (retried within the function timeout)
PROVISIONED_INIT_LIMIT_S = 130.0  # provisioned concurrency: 130 s or the function timeout, whichever is higher


def init_limit_s(timeout_s: float, provisioned: bool) -> float:
    """How long the emulator lets a sandbox's init phase run ("Understanding the Lambda execution environment
    lifecycle"): on demand, 10 s and then the retry under the function timeout; provisioned, max(130 s, timeout)."""
    return max(PROVISIONED_INIT_LIMIT_S, timeout_s) if provisioned else INIT_LIMIT_S + timeout_s


@dataclass
class InvokeResult:
    """How one invocation ended."""

    status: str  # "ok" | "error" (the function reported one) | "timeout" | "crash" | "init_error" | "throttled"
    payload: bytes  # the response, or the error document {"errorType", "errorMessage", ...}
    request_id: str = ""
    content_type: str = "application/json"
    error_type: str = ""
    cold_start: bool = False
    init_ms: float = 0.0
    duration_ms: float = 0.0
    restore_ms: float = 0.0  # a SnapStart sandbox's first invocation: its Restore Duration instead of init_ms

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _error_doc(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class Sandbox:
    """One execution environment of a function."""

    def __init__(self, config: FunctionConfig, sink: LogSink, *, provisioned: bool = False,
                 memory_mode: str = "auto", run: ImageRun | None = None) -> None:
        self.config = config
        self.run = run if run is not None and run.isolated else None  # None: the host's runtime
        self.sink = sink
        self.provisioned = provisioned
        self.memory_mode = memory_mode
        self.id = uuid.uuid4().hex
        self.log_stream = f"{datetime.now(UTC):%Y/%m/%d}/[{config.version}]{self.id}"
        self.api = RuntimeApi()
        self.process: asyncio.subprocess.Process | None = None
        self.guard: MemoryGuard | None = None
        self.cpu_cap: CpuLimit | None = None
        self.init_ms = 0.0
        self.invocations = 0
        self.last_used = time.monotonic()
        self.dead = False
        self._exited = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._first_invoke = True
        self.restore_ms = 0.0

    @property
    def initialization_type(self) -> str:
        """AWS_LAMBDA_INITIALIZATION_TYPE of this sandbox."""
        return "provisioned-concurrency" if self.provisioned else "on-demand"

    @property
    def alive(self) -> bool:
        return not self.dead and self.process is not None and self.process.returncode is None

    # ------------------------------------------------------------------ lifecycle

    def _command(self) -> list[str]:
        if self.run is not None:  # the image's ENTRYPOINT + CMD (the handler), inside its root filesystem
            return self.run.argv(self.config.image_command or None)
        if self.config.command:
            return list(self.config.command)
        return [sys.executable, "-m", "awslambdaric", self.config.handler]

    def _environment(self) -> dict[str, str]:
        c = self.config
        if self.run is not None:  # the image's ENV, then the variables Lambda sets
            env = {"LANG": "en_US.UTF-8", "TZ": ":UTC", "PYTHONUNBUFFERED": "1", **self.run.env}
            task_root = env.get("LAMBDA_TASK_ROOT") or self.run.workdir or "/var/task"
            runtime_dir = env.get("LAMBDA_RUNTIME_DIR") or "/var/runtime"
            cmd = c.image_command or self.run.cmd
            handler = cmd[0] if cmd else c.handler
        else:
            task_root = c.task_root or c.model_dir
            runtime_dir, handler = str(Path(sys.executable).parent), c.handler
            env = {
                "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                "LANG": "en_US.UTF-8",
                "TZ": ":UTC",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPATH": os.pathsep.join(p for p in (task_root, os.environ.get("PYTHONPATH", "")) if p),
                "MLFN_MODEL_DIR": c.model_dir,
            }
        env.update({
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_FUNCTION_NAME": c.name,
            "AWS_LAMBDA_FUNCTION_VERSION": c.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(c.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": c.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": self.initialization_type,
            "AWS_EXECUTION_ENV": "AWS_Lambda_Image",
            "AWS_REGION": c.region,
            "AWS_DEFAULT_REGION": c.region,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": runtime_dir,
        })
        env.update(c.env if self.run is not None else host_paths(c.env, c.model_dir))
        return env

    def log(self, message: str) -> None:
        self.sink.write(self.config.log_group, self.log_stream, message)

    async def start(self) -> InvokeResult | None:
        """Spawn the runtime and wait for its init phase; an `InvokeResult` describes an init that failed."""
        c = self.config
        started = time.perf_counter()
        await self.api.start()
        cwd = "/" if self.run is not None else c.task_root or c.model_dir  # in the image: its WORKDIR (launcher)
        self.process = await asyncio.create_subprocess_exec(
            *self._command(), cwd=cwd, env=self._environment(), start_new_session=True,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        self.guard = limit_memory(self.process.pid, c.memory_mb * 1024 * 1024, f"mlfn-{self.id[:12]}",
                                  prefer=self.memory_mode)
        self.cpu_cap = lambda_cpu_cap(self.process.pid, c.memory_mb, f"mlfn-cpu-{self.id[:12]}")  # opt-in
        self._tasks = [asyncio.create_task(self._pump_output()), asyncio.create_task(self._wait_exit())]
        runtime = (f"image {self.run.image_name}" if self.run is not None
                   else f"mlfn-local python{sys.version_info.major}.{sys.version_info.minor}")
        self.log(f"INIT_START Runtime Version: {runtime}\tMemory cap: {self.guard.mode}")
        waits = {asyncio.create_task(w) for w in (*self._init_done(), self.api.init_failed.wait(),
                                                   self._exited.wait())}
        try:
            await asyncio.wait(waits, timeout=init_limit_s(c.timeout_s, self.provisioned),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        self.init_ms = (time.perf_counter() - started) * 1000
        if self.api.ready.is_set() or self._init_finished():
            return None
        if self.api.init_error is not None:
            doc = self.api.init_error
            error = InvokeResult("init_error", json.dumps(doc).encode(), error_type=str(doc.get("errorType", "")))
        elif self._exited.is_set():
            error = InvokeResult("init_error", _error_doc("Runtime.ExitError", self._exit_text()),
                                 error_type="Runtime.ExitError")
        else:
            error = InvokeResult("init_error", _error_doc("Sandbox.Timedout", "Init phase timed out"),
                                 error_type="Sandbox.Timedout")
        error.cold_start, error.init_ms = True, self.init_ms
        status = "timeout" if error.error_type == "Sandbox.Timedout" else "error"  # the guide's INIT_REPORT timeout log
        self.log(f"INIT_REPORT Init Duration: {self.init_ms:.2f} ms\tPhase: init\tStatus: {status}\t"
                 f"Error Type: {error.error_type}")
        await self.kill()
        return error

    def _init_done(self) -> tuple[Coroutine[Any, Any, Any], ...]:
        """What ends the init phase: the runtime's first GET /next (a SnapStart snapshot adds GET /restore/next)."""
        return (self.api.ready.wait(),)

    def _init_finished(self) -> bool:
        return False

    async def kill(self) -> None:
        """End the sandbox (its whole process group) and free its Runtime API and cgroup."""
        self.dead = True
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._exited.wait(), 5)
        for task in self._tasks:
            if not task.done():
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, 1)
        await self.api.stop()
        if self.guard is not None:
            self.guard.release()
        if self.cpu_cap is not None:
            self.cpu_cap.release()

    async def _pump_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.log(line.decode("utf-8", "replace").rstrip("\n"))

    async def _wait_exit(self) -> None:
        assert self.process is not None
        await self.process.wait()
        self._exited.set()

    def _exit_text(self) -> str:
        code = self.process.returncode if self.process is not None else None
        if code == 0:  # as AWS words it (responses recorded from AWS: a handler calling sys.exit(0))
            return "Runtime exited without providing a reason"
        if code is not None and code < 0:
            name = signal.Signals(-code).name.removeprefix("SIG").lower()
            return f"Runtime exited with error: signal: {'killed' if name == 'kill' else name}"
        return f"Runtime exited with error: exit status {code}"

    def _max_memory_mb(self) -> int:
        with contextlib.suppress(OSError, AttributeError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():  # type: ignore[union-attr]
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
        return 0

    def _cold_start_fields(self) -> str:
        """What a REPORT line adds on a sandbox's first invocation."""
        return f"\tInit Duration: {self.init_ms:.2f} ms"

    # ------------------------------------------------------------------ one invocation

    async def invoke(self, event: bytes) -> InvokeResult:
        """Run one event; the function timeout, a crash or the memory cap end the sandbox."""
        c = self.config
        cold = self._first_invoke and not self.provisioned
        self._first_invoke = False
        self.invocations += 1
        started = time.perf_counter()
        invocation = Invocation(event, int(time.time() * 1000 + c.timeout_s * 1000), c.arn)
        rid = invocation.request_id
        self.log(f"START RequestId: {rid} Version: {c.version}")
        self.api.submit(invocation)
        exited: asyncio.Future[object] = asyncio.ensure_future(self._exited.wait())
        waits: set[asyncio.Future[object]] = {invocation.outcome, exited}  # type: ignore[arg-type]
        try:
            done, _ = await asyncio.wait(waits, timeout=c.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
        duration = (time.perf_counter() - started) * 1000
        max_mb = self._max_memory_mb()
        if invocation.outcome in done:
            outcome: Outcome = invocation.outcome.result()
            if outcome.kind == "response":
                result = InvokeResult("ok", outcome.body, rid, outcome.content_type)
            else:
                result = InvokeResult("error", outcome.body, rid, error_type=outcome.error_type or _error_type(outcome))
        elif not done:
            seconds = f"{c.timeout_s:.2f}"
            self.log(f"{datetime.now(UTC).isoformat(timespec='milliseconds')[:-6]}Z {rid} "
                     f"Task timed out after {seconds} seconds")
            result = InvokeResult("timeout", _error_doc("Sandbox.Timedout",
                                  f"RequestId: {rid} Error: Task timed out after {seconds} seconds"), rid,
                                  error_type="Sandbox.Timedout")
        else:
            oom = self.guard is not None and self.guard.oom_killed()
            error_type = "Runtime.OutOfMemory" if oom else "Runtime.ExitError"
            result = InvokeResult("crash", _error_doc(error_type, f"RequestId: {rid} Error: {self._exit_text()}"),
                                  rid, error_type=error_type)
        result.cold_start = cold
        result.init_ms = self.init_ms if cold else 0.0
        result.restore_ms = self.restore_ms if cold else 0.0
        result.duration_ms = duration
        self.log(f"END RequestId: {rid}")
        report = (f"REPORT RequestId: {rid}\tDuration: {duration:.2f} ms\t"
                  f"Billed Duration: {billed_ms(duration, result.init_ms)} ms\t"
                  f"Memory Size: {c.memory_mb} MB\tMax Memory Used: {max_mb} MB")
        if cold:
            report += self._cold_start_fields()
        if result.status in ("timeout", "crash"):
            status = "timeout" if result.status == "timeout" else "error"
            report += f"\tStatus: {status}\tError Type: {result.error_type}"
        self.log(report)
        if result.status in ("timeout", "crash"):
            await self.kill()  # Lambda resets the execution environment after a timeout or a runtime exit
        self.last_used = time.monotonic()
        return result


def billed_ms(duration_ms: float, init_ms: float = 0.0) -> int:
    """Lambda's Billed Duration: rounded up to the next millisecond, the init phase included on a cold start (the
    guide's REPORT example: Duration 15.74 ms, Init Duration 130.49 ms, Billed Duration 147 ms)."""
    return math.ceil(round(duration_ms + init_ms, 6))


def _error_type(outcome: Outcome) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(outcome.body).get("errorType", "Unhandled"))
    return "Unhandled"


def host_paths(env: dict[str, str], model_dir: str) -> dict[str, str]:
    """The function's variables for the host runtime: a path into the image's model folder (/opt/mlfn/model) points
    at its unpacked copy, which is all of the image the host runtime has."""
    inside = "/" + MODEL_PREFIX.strip("/")
    return {name: model_dir + value[len(inside):] if value == inside or value.startswith(inside + "/") else value
            for name, value in env.items()}
