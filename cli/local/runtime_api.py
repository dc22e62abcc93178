"""mlfn's Lambda Runtime API: one server per sandbox, as each Lambda execution environment has its own.

The real `awslambdaric` inside the sandbox long-polls `GET /2018-06-01/runtime/invocation/next`, runs the handler and
posts the result to `.../invocation/{id}/response` or `.../invocation/{id}/error`; a failure while importing the handler
goes to `.../init/error`. The client is known (libcurl in awslambdaric's native module, `http.client` for init errors),
so a small HTTP/1.1 server on asyncio streams is enough: Content-Length or chunked bodies, keep-alive, nothing else.

SnapStart ("Implementing SnapStart hooks for container images"): a runtime started with
AWS_LAMBDA_INITIALIZATION_TYPE=snap-start runs its before-snapshot hooks after init and calls
`GET .../restore/next`, which answers once the environment is restored; an after-restore hook that fails is reported
with `POST .../restore/error`. `mlfn.cli.local.snapstart` drives both (`restore_calls`, `restore`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from mlfn.runtime.lambda_contract import RESPONSE_LIMIT

PREFIX = "/2018-06-01/runtime"
MAX_RESPONSE_BYTES = RESPONSE_LIMIT  # Lambda's synchronous response limit ("6 MB"; the exact number AWS reports)
RESTORED_PID_HEADER = "Mlfn-Restored-Pid"  # the emulator's stand-in only: see mlfn.cli.local.restore_point
_INVOCATION_PATH = re.compile(rf"^{PREFIX}/invocation/([^/]+)/(response|error)$")


@dataclass
class Outcome:
    """What the runtime reported for one invocation."""

    kind: str  # "response" | "error"
    body: bytes
    content_type: str = "application/json"
    error_type: str = ""


@dataclass
class Invocation:
    """One event handed to the runtime, and the future its outcome resolves."""

    event: bytes
    deadline_ms: int
    function_arn: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    trace_id: str = ""
    outcome: asyncio.Future[Outcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def headers(self) -> dict[str, str]:
        return {
            "Lambda-Runtime-Aws-Request-Id": self.request_id,
            "Lambda-Runtime-Deadline-Ms": str(self.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.function_arn,
            "Lambda-Runtime-Trace-Id": self.trace_id or _trace_id(),
            "Content-Type": "application/json",
        }


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"


class RuntimeApi:
    """The Runtime API of one sandbox: hands out invocations and collects their outcomes."""

    def __init__(self) -> None:
        self._pending: asyncio.Queue[Invocation] = asyncio.Queue()
        self._current: Invocation | None = None
        self.ready = asyncio.Event()  # set on the first GET /next: the init phase is over
        self.init_error: dict[str, Any] | None = None
        self.init_failed = asyncio.Event()
        self.restore_calls: asyncio.Queue[int] = asyncio.Queue()  # each GET /restore/next: the pid it reports
        self._restores: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def address(self) -> str:
        """The value of AWS_LAMBDA_RUNTIME_API for the sandbox."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(BaseException):
                await task
        self._server = None

    def submit(self, invocation: Invocation) -> None:
        """Queue an invocation for the runtime's next GET /next."""
        self._pending.put_nowait(invocation)

    def restore(self, headers: dict[str, str]) -> None:
        """Answer the runtime's pending (or next) GET /restore/next with 200 and these headers."""
        self._restores.put_nowait(headers)

    # ------------------------------------------------------------------ HTTP

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                method, path, headers, body = request
                status, reply_headers, reply = await self._dispatch(method, path, headers, body)
                _write_response(writer, status, reply_headers, reply)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        except asyncio.CancelledError:  # stop(): end quietly (asyncio's stream callback would log a cancelled task)
            return
        finally:
            self._connections.discard(task)
            writer.close()

    async def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        path = path.split("?", 1)[0]
        if method == "GET" and path == f"{PREFIX}/invocation/next":
            self.ready.set()
            invocation = await self._pending.get()
            self._current = invocation
            return 200, invocation.headers(), invocation.event
        if method == "GET" and path == f"{PREFIX}/restore/next":
            self.restore_calls.put_nowait(int(headers.get(RESTORED_PID_HEADER.lower(), "0") or 0))
            return 200, await self._restores.get(), b""
        if method == "POST" and path in (f"{PREFIX}/init/error", f"{PREFIX}/restore/error"):
            self.init_error = _json_or_text(body)
            default = "Runtime.AfterRestoreError" if path.endswith("restore/error") else "Runtime.Unknown"
            error_type = headers.get("lambda-runtime-function-error-type", default)
            if path.endswith("restore/error"):  # the hook's exception type stays in the body's errorMessage
                self.init_error["errorType"] = error_type
            self.init_error.setdefault("errorType", error_type)
            self.init_failed.set()
            return _accepted()
        match = _INVOCATION_PATH.match(path)
        if method == "POST" and match:
            request_id, kind = match.groups()
            current = self._current
            if current is None or current.request_id != request_id:
                return _error(400, "InvalidRequestID", f"Invalid request ID: {request_id}")
            if kind == "response" and len(body) > MAX_RESPONSE_BYTES:
                outcome = Outcome("error", json.dumps({
                    "errorMessage": f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload "
                                    f"size ({MAX_RESPONSE_BYTES} bytes).",
                    "errorType": "Function.ResponseSizeTooLarge",
                }).encode(), error_type="Function.ResponseSizeTooLarge")
                self._resolve(current, outcome)
                return _error(413, "RequestEntityTooLarge", "Exceeded maximum allowed payload size")
            if kind == "response":
                outcome = Outcome("response", body, headers.get("content-type", "application/json"))
            else:
                outcome = Outcome("error", body, error_type=headers.get("lambda-runtime-function-error-type", ""))
            self._resolve(current, outcome)
            return _accepted()
        return _error(404, "NotFound", f"{method} {path} is not part of the Lambda Runtime API")

    def _resolve(self, invocation: Invocation, outcome: Outcome) -> None:
        self._current = None
        if not invocation.outcome.done():
            invocation.outcome.set_result(outcome)


def _accepted() -> tuple[int, dict[str, str], bytes]:
    return 202, {"Content-Type": "application/json"}, b'{"status":"OK"}'


def _error(status: int, error_type: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
    return status, {"Content-Type": "application/json"}, body


def _json_or_text(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {"errorMessage": body.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"errorMessage": str(value)}


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return method, path, headers, body


def _write_response(writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes) -> None:
    lines = [f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
