"""SageMaker endpoints and ECS services of the emulator: the runtime's `serve` process behind the gateway.

One instance per endpoint, started on the first request after deploy or after scale-to-zero (a cold start: the
request waits for `GET /ping` to answer 200, as SageMaker waits for a healthy container) and stopped after `idle_s`
without requests. SageMaker endpoints answer any POST (`/endpoints/<name>/invocations`, `/v1/models/m:predict`,
...; SigV4 with service `sagemaker` or `execute-api`, as mlfn's API Gateway front does) like InvokeEndpoint: the
model's 2xx answer as is, anything else as a 424 ModelError document. An inference component at zero copies (the
copy count the control plane records in `<state>/inference-components.json`) answers 400 ValidationError, as
InvokeEndpoint does, and starts nothing. Paths other than the runtime's go through the stack's REST front when the
registration carries it (`rest_front`: integration responses and mapping templates read from the template).
ECS services are a plain reverse proxy
(the HTTP API + load balancer in front of the service; SigV4 service `execute-api` when AWS_IAM); while the service's
desired count in the control plane is 0 (no task registered), the load balancer's own 503 answers and nothing starts.
Each answered request is reported to `meter` (`front_metrics`: the metrics AWS publishes for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from . import rest_front
from .config import ContainerConfig
from .emulator_state import inference_component_copies
from .front_metrics import FrontCall
from .gateway import MAX_REQUEST_BYTES, GatewayRequest, json_reply
from .image_rootfs import ImageRun
from .logsink import LogSink
from .memory import MemoryGuard, limit_memory
from .orphans import ChildRegistry
from .payload_v2 import Caller, HttpReply

HOP_HEADERS = {"host", "connection", "content-length", "transfer-encoding", "keep-alive", "authorization",
               "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}
COMPONENT_HEADER = "x-amzn-sagemaker-inference-component"
# InvokeEndpoint on an inference component with no copies (AWS ML blog "Unlock cost savings with the new scale down
# to zero feature in SageMaker Inference"; docs: "Scale an endpoint to zero instances")
NO_CAPACITY = ("Inference Component has no capacity to process this request. ApplicationAutoScaling may be "
               "in-progress (if configured) or try to increase the capacity by invoking "
               "UpdateInferenceComponentRuntimeConfig API.")

# An ECS service with no task registered behind its load balancer: the ALB answers 503 itself ("503 Service
# Temporarily Unavailable", counted in HTTPCode_ELB_503_Count; re:Post "How do I troubleshoot 503 errors from my
# Application Load Balancer?"). The page around the phrase is the emulator's.
ALB_503_BODY = (b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
                b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n")
TASKS_TTL_S = 1.0  # how long a desired task count read from the control plane is used


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ContainerEndpoint:
    """The gateway target of one SageMaker endpoint or ECS service, and its (0 or 1) running instance."""

    max_request_bytes = MAX_REQUEST_BYTES

    def __init__(self, config: ContainerConfig, sink: LogSink, *, memory_mode: str = "auto",
                 children: ChildRegistry | None = None, state: Path | None = None, run: ImageRun | None = None) -> None:
        self.config = config
        self.run = run or ImageRun(config.image, reason="not prepared")  # what the instance runs (image_rootfs)
        self.state = state  # the emulator's state directory, where the control plane records inference components
        self.children = children
        self.sink = sink
        self.memory_mode = memory_mode
        self.url_id = config.url_id
        self.auth_type = config.auth_type
        self.region = config.region
        self.signing_service: str | tuple[str, ...] = (
            ("execute-api", "sagemaker") if config.kind == "sagemaker" else ("execute-api",))
        self.process: asyncio.subprocess.Process | None = None
        self.guard: MemoryGuard | None = None
        self.port = 0
        self.stream = ""
        self.in_flight = 0
        self.last_used = time.monotonic()
        self.starts = 0
        self.reclaimed = 0
        self._lock = asyncio.Lock()
        self._client = httpx.AsyncClient(timeout=config.request_timeout_s)
        self._reaper: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        # told of each request it answered, for the metrics AWS publishes (`front_metrics`; the data plane's sink)
        self.meter: Callable[[FrontCall], None] = lambda call: None
        # ECS: the service's desired task count (the data plane asks the control plane); None: always a task
        self.desired_tasks: Callable[[], int | None] | None = None
        self._tasks: int | None = None
        self._tasks_read_at = -TASKS_TTL_S

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_loop())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        await self._stop_instance()
        await self._client.aclose()

    def log(self, message: str) -> None:
        self.sink.write(self.config.log_group, self.stream or "mlfn-local/scheduler", message)

    def _command(self) -> list[str]:
        if self.run.isolated:
            # SageMaker runs `docker run IMAGE serve` (serve replaces CMD); ECS runs ENTRYPOINT + CMD; a container's
            # root is writable. The network is the host's here, so the server listens on loopback only (MLFN_PORT)
            cmd = ["serve"] if self.config.kind == "sagemaker" else None
            return [*self.run.argv(cmd, writable=True), "--host", "127.0.0.1"]
        if self.config.command:
            return [part.replace("{port}", str(self.port)) for part in self.config.command]
        return [sys.executable, "-m", "mlfn.runtime.server", "serve", "--host", "127.0.0.1", "--port", str(self.port)]

    async def _ensure_instance(self) -> tuple[bool, float, HttpReply | None]:
        """Make sure an instance answers /ping; returns (cold start, start ms, error reply)."""
        async with self._lock:
            if self.running:
                return False, 0.0, None
            started = time.perf_counter()
            self.port = _free_port()
            self.stream = (f"AllTraffic/{uuid.uuid4().hex[:12]}" if self.config.kind == "sagemaker"
                           else f"mlfn/{self.config.name}/{uuid.uuid4().hex}")
            host = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                    "MLFN_MODEL_DIR": self.config.model_dir}
            env = {"LANG": "en_US.UTF-8", "PYTHONUNBUFFERED": "1", **(self.run.env if self.run.isolated else host),
                   "MLFN_PORT": str(self.port), "AWS_REGION": self.config.region,
                   "MLFN_ALLOW_CPU_FOR_GPU": "1",  # the emulator has no GPU: a gpu = true model runs on the CPU
                   **self.config.env}
            cwd = "/" if self.run.isolated else self.config.model_dir  # in the image: its WORKDIR (launcher)
            try:
                self.process = await asyncio.create_subprocess_exec(
                    *self._command(), env=env, cwd=cwd, start_new_session=True,
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            except OSError as exc:
                self.log(f"Instance could not start: {exc}")
                return True, 0.0, json_reply(503, {"ErrorCode": "ServiceUnavailable",
                                                   "Message": f"The model container could not start: {exc}"})
            if self.children is not None:
                self.children.record(self.process.pid)
            self.guard = limit_memory(self.process.pid, self.config.memory_mb * 1024 * 1024,
                                      f"mlfn-{self.stream[-12:]}", prefer=self.memory_mode)
            self._pump = asyncio.create_task(self._pump_output(self.process))
            self.starts += 1
            self.log(f"Starting instance on port {self.port} (cold start)")
            deadline = time.monotonic() + self.config.ready_timeout_s
            while time.monotonic() < deadline and self.running:
                with contextlib.suppress(httpx.HTTPError):
                    ping = await self._client.get(f"http://127.0.0.1:{self.port}/ping", timeout=2)
                    if ping.status_code == 200:
                        ms = (time.perf_counter() - started) * 1000
                        self.log(f"Instance healthy after {ms:.0f} ms")
                        return True, ms, None
                await asyncio.sleep(0.05)
            reason = "exited" if not self.running else f"did not pass /ping within {self.config.ready_timeout_s:g} s"
            self.log(f"Instance failed to start: it {reason}")
            await self._stop_instance()
            return True, 0.0, json_reply(503, {"ErrorCode": "ServiceUnavailable",
                                               "Message": f"The model container {reason}; see its logs"})

    async def _pump_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            self.log(line.decode("utf-8", "replace").rstrip("\n"))

    async def _stop_instance(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if process is not None and self.children is not None:
            self.children.forget(process.pid)
        if self._pump is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._pump, 1)
        if self.guard is not None:
            self.guard.release()
            self.guard = None

    async def _reap_loop(self) -> None:
        interval = max(0.05, min(1.0, self.config.idle_s / 4))
        while True:
            await asyncio.sleep(interval)
            idle = time.monotonic() - self.last_used
            if self.running and self.in_flight == 0 and idle >= self.config.idle_s:
                async with self._lock:
                    if self.in_flight == 0:
                        self.log(f"Scaled to zero after {self.config.idle_s:g} s without requests")
                        self.reclaimed += 1
                        await self._stop_instance()

    def _upstream_path(self, request: GatewayRequest) -> str | None:
        if self.config.kind == "ecs":
            return request.raw_path + (f"?{request.raw_query}" if request.raw_query else "")
        # mlfn's REST front sends every POST to /invocations (KServe v1 / OIP v2 / SageMaker bodies alike), and
        # the SageMaker runtime's own path is /endpoints/<name>/invocations: both end up at the container's.
        return "/invocations" if request.method == "POST" else None

    def preflight(self, request: GatewayRequest) -> HttpReply | None:
        return None  # CORS is the front's (API Gateway's) business; the emulator passes OPTIONS through

    async def handle(self, request: GatewayRequest, caller: Caller | None) -> HttpReply:
        started = time.perf_counter()
        path = self._upstream_path(request)
        if path is None:
            return json_reply(404, {"message": f"Use POST /endpoints/{self.config.name}/invocations"})
        front = self.config.front if request.raw_path != f"/endpoints/{self.config.name}/invocations" else {}
        headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_HEADERS]
        if front:  # the integration request's fixed headers (the inference component) replace the caller's
            fixed = rest_front.static_request_headers(front)
            headers = [(k, v) for k, v in headers if k.lower() not in {f.lower() for f in fixed}] + list(fixed.items())
        refused = self._no_capacity(headers) or await self._no_task()
        reply, model_status, model_ms = (refused, None, 0.0) if refused else await self._invoke(path, request,
                                                                                                   headers)
        if front:
            accept = next((v for k, v in request.headers if k.lower() == "accept"), "")
            status, mapped, body = rest_front.respond(front, reply.status, reply.headers, reply.body, accept)
            reply = HttpReply(status, mapped + [(k, v) for k, v in reply.headers if k.startswith("x-mlfn-")], body)
        self.meter(FrontCall(
            self.config.kind, self.config.name, reply.status, (time.perf_counter() - started) * 1000,
            model_status=model_status, model_ms=model_ms,
            no_capacity=refused is not None and self.config.kind == "sagemaker",
            component=next((v for k, v in headers if k.lower() == COMPONENT_HEADER), ""), via_front=bool(front),
            dimensions={**self.config.metric_dimensions, **rest_front.metric_dimensions(front)}))
        return reply

    def _no_capacity(self, headers: list[tuple[str, str]]) -> HttpReply | None:
        """InvokeEndpoint's 400 ValidationError for an inference component the control plane has at zero copies."""
        component = next((v for k, v in headers if k.lower() == COMPONENT_HEADER), None)
        if self.config.kind != "sagemaker" or not component or self.state is None:
            return None
        if inference_component_copies(self.state, self.config.account, self.config.region, component) != 0:
            return None
        self.log(f"Inference component {component} has no copies: answered 400 ValidationError")
        return json_reply(400, {"Message": NO_CAPACITY}, ("x-amzn-errortype", "ValidationError"))

    async def _no_task(self) -> HttpReply | None:
        """The load balancer's own 503 while the ECS service has no task: its desired count (the control plane's,
        read at most once a second) is 0, so no target is registered. It starts nothing."""
        if self.desired_tasks is None:
            return None
        if time.monotonic() - self._tasks_read_at >= TASKS_TTL_S:
            try:
                self._tasks = await asyncio.to_thread(self.desired_tasks)
            except Exception as exc:  # the control plane gone: serve as without one
                self.log(f"Desired task count not read: {exc}")
                self._tasks = None
            self._tasks_read_at = time.monotonic()
        if self._tasks != 0:
            return None
        self.log("The service has no task: the load balancer answered 503")
        return HttpReply(503, [("content-type", "text/html")], ALB_503_BODY)

    async def _invoke(self, path: str, request: GatewayRequest,
                      headers: list[tuple[str, str]]) -> tuple[HttpReply, int | None, float]:
        """The container's answer, and for the metrics its own status (None: it did not answer) and time (ms)."""
        self.in_flight += 1
        try:
            cold, start_ms, error = await self._ensure_instance()
            if error is not None:
                return error, None, 0.0
            sent = time.perf_counter()
            try:
                upstream = await self._client.request(request.method, f"http://127.0.0.1:{self.port}{path}",
                                                      headers=headers, content=request.body)
            except httpx.TimeoutException:
                return json_reply(424 if self.config.kind == "sagemaker" else 504, {
                    "ErrorCode": "ModelError", "Message": f"The model did not answer within "
                                                          f"{self.config.request_timeout_s:g} s"}), None, 0.0
            except httpx.HTTPError as exc:
                return json_reply(502, {"ErrorCode": "ModelError",
                                        "Message": f"The model container failed: {exc}"}), None, 0.0
            model_ms = (time.perf_counter() - sent) * 1000
            reply = self._reply(upstream)
            reply.headers.append(("x-mlfn-cold-start", "true" if cold else "false"))
            if cold:
                reply.headers.append(("x-mlfn-init-duration-ms", f"{start_ms:.1f}"))
            return reply, upstream.status_code, model_ms
        finally:
            self.in_flight -= 1
            self.last_used = time.monotonic()

    def _reply(self, upstream: httpx.Response) -> HttpReply:
        if self.config.kind == "sagemaker" and not 200 <= upstream.status_code < 300:
            side = "client" if upstream.status_code < 500 else "server"
            text = upstream.text
            message = (f"Received {side} error ({upstream.status_code}) from primary with message \"{text}\". "
                       f"See the logs in log group {self.config.log_group}.")
            return json_reply(424, {"ErrorCode": f"{side.upper()}_ERROR_FROM_MODEL", "Message": message,
                                    "OriginalMessage": text, "OriginalStatusCode": upstream.status_code},
                              ("x-amzn-errortype", "ModelError"))
        skip = HOP_HEADERS | {"content-encoding", "date", "server"}
        headers = [(k.lower(), v) for k, v in upstream.headers.multi_items() if k.lower() not in skip]
        if self.config.kind == "sagemaker":
            headers.append(("x-amzn-invoked-production-variant", "AllTraffic"))
        return HttpReply(upstream.status_code, headers, upstream.content)

    def describe(self) -> dict[str, object]:
        return {"running": self.running, "port": self.port, "starts": self.starts, "reclaimed": self.reclaimed,
                "in_flight": self.in_flight, "memory_cap": self.guard.mode if self.guard else None,
                "log_stream": self.stream}

