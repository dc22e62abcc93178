"""The HTTPS front door: Function URLs (and SageMaker / ECS endpoints) on 127.0.0.1.

Each registered target gets its own HTTPS listener, so its URL is `https://127.0.0.1:<port>/` and the path is the
app's own path (`curl --cacert <ca> https://127.0.0.1:<port>/v1/models/iris:predict` works with no DNS set-up). The
same targets are also reachable on one shared listener by Host header, `https://<url-id>.lambda-url.<region>.localhost:
<shared-port>/...`, which curl and browsers resolve to 127.0.0.1 by themselves (other clients: `curl --resolve`-style
overrides). Both listeners serve the one ASGI app below, which finds the target, enforces the size limit and SigV4,
and hands the request to the target.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import uvicorn

from mlfn.runtime.lambda_contract import REQUEST_LIMIT

from .iam_callers import CallerDirectory, CallerLookupError, Identity, caller_scope
from .payload_v2 import Caller, HttpReply
from .sigv4 import Credential, SignatureError, verify
from .tls import TlsFiles

MAX_REQUEST_BYTES = REQUEST_LIMIT  # 6291456: Lambda's synchronous invoke request limit
# What a Function URL answers a correctly signed caller that IAM does not allow (with AccessDeniedException)
FUNCTION_URL_DENIED = ("Forbidden. For troubleshooting Function URL authorization issues, see: "
                       "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html")


@dataclass
class GatewayRequest:
    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    host: str
    request_id: str


class Target(Protocol):
    """Something the gateway can route to: a Lambda function URL or a container endpoint."""

    url_id: str
    auth_type: str
    region: str
    signing_service: str | tuple[str, ...]  # the SigV4 service name(s) the target's signatures may use
    max_request_bytes: int

    def preflight(self, request: GatewayRequest) -> HttpReply | None:
        """The answer to a CORS preflight the target handles itself (before auth), or None."""

    async def handle(self, request: GatewayRequest, caller: Caller | None) -> HttpReply: ...


def json_reply(status: int, document: dict[str, Any], *extra: tuple[str, str]) -> HttpReply:
    return HttpReply(status, [("content-type", "application/json"), *extra], json.dumps(document).encode())


def too_large(limit: int) -> HttpReply:
    return json_reply(413, {"Message": f"Request must be smaller than {limit} bytes for the InvokeFunction operation"},
                      ("x-amzn-errortype", "RequestTooLargeException"))


class QuietServer(uvicorn.Server):
    """uvicorn without its signal handling: the data plane owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Gateway:
    """Routes HTTPS requests on 127.0.0.1 to registered targets."""

    def __init__(self, tls: TlsFiles, credentials: dict[str, Credential],
                 callers: CallerDirectory | None = None) -> None:
        self.tls = tls
        self.credentials = credentials  # the emulator's own keys: the account's admin, never policy-checked
        self.callers = callers  # the control plane's IAM users and roles, checked against their policies
        self.by_port: dict[int, Target] = {}
        self.by_id: dict[str, Target] = {}
        self._servers: dict[int, tuple[QuietServer, asyncio.Task[None]]] = {}
        self.shared_port = 0

    async def listen(self, port: int = 0) -> int:
        """Open an HTTPS listener on 127.0.0.1 (port 0: any free port; a taken port falls back to a free one)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.bind(("127.0.0.1", 0))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        actual = int(sock.getsockname()[1])
        config = uvicorn.Config(self, lifespan="off", access_log=False, log_level="warning", http="httptools",
                                ssl_certfile=str(self.tls.cert), ssl_keyfile=str(self.tls.key),
                                timeout_keep_alive=30)
        server = QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        self._servers[actual] = (server, task)
        return actual

    async def close_port(self, port: int) -> None:
        entry = self._servers.pop(port, None)
        if entry is None:
            return
        server, task = entry
        server.should_exit = True
        done, _ = await asyncio.wait({task}, timeout=0.3)
        if not done:  # idle keep-alive TLS connections wait for a close_notify that never comes: cut them
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
            server.force_exit = True
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 5)

    async def close(self) -> None:
        for port in list(self._servers):
            await self.close_port(port)
        if self.callers is not None:
            await self.callers.aclose()

    def add(self, target: Target, port: int) -> None:
        self.by_port[port] = target
        self.by_id[target.url_id] = target

    def remove(self, target: Target) -> None:
        self.by_id.pop(target.url_id, None)
        for port, t in list(self.by_port.items()):
            if t is target:
                del self.by_port[port]

    def _find(self, port: int, host: str) -> Target | None:
        target = self.by_port.get(port)
        if target is not None:
            return target
        return self.by_id.get(host.split(".", 1)[0].lower())

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        host = next((v for k, v in headers if k.lower() == "host"), "")
        request_id = str(uuid.uuid4())
        target = self._find(scope["server"][1], host)
        if target is None:
            reply = json_reply(404, {"Message": f"No function URL or endpoint is registered for {host}"})
        else:
            reply = await self._handle(target, scope, receive, headers, host, request_id)
        # The gateway frames the body itself: a length (or encoding) the function declared would be a second one.
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers
               if k.lower() not in ("content-length", "transfer-encoding")]
        out += [(b"x-amzn-requestid", request_id.encode()), (b"content-length", str(len(reply.body)).encode())]
        await send({"type": "http.response.start", "status": reply.status, "headers": out})
        await send({"type": "http.response.body", "body": reply.body})

    async def _handle(self, target: Target, scope: dict[str, Any], receive: Any, headers: list[tuple[str, str]],
                      host: str, request_id: str) -> HttpReply:
        limit = target.max_request_bytes
        declared = next((v for k, v in headers if k.lower() == "content-length"), "")
        if declared.isdigit() and int(declared) > limit:
            return too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return HttpReply(499)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        request = GatewayRequest(
            method=scope["method"], raw_path=scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
            raw_query=scope.get("query_string", b"").decode("latin-1"), headers=headers, body=b"".join(chunks),
            source_ip=(scope.get("client") or ("127.0.0.1", 0))[0], host=host, request_id=request_id)
        early = target.preflight(request)
        if early is not None:
            return early
        caller = None
        if target.auth_type == "AWS_IAM":
            checked = await self._authorize(target, request)
            if isinstance(checked, HttpReply):
                return checked
            caller = checked
        return await target.handle(request, caller)

    async def _authorize(self, target: Target, request: GatewayRequest) -> Caller | HttpReply:
        """The caller of a correctly signed request that may call `target`, or the 403 to answer.

        The emulator's own keys stand for the account's admin; keys of the control plane's IAM users and roles are
        checked against their policies by targets that can (`denied`: Function URLs; container fronts check only
        the signature)."""
        try:
            identity = await self._identity(target, request)
        except CallerLookupError as exc:
            return json_reply(403, {"Message": "Forbidden"}, ("x-mlfn-error", str(exc)))
        credentials = self.credentials
        if identity is not None:
            credentials = {**credentials, identity.access_key: Credential(
                "", identity.account_id, identity.arn.rsplit("/", 1)[-1], signing_key=identity.signing_key)}
        try:
            caller = verify(method=request.method, raw_path=request.raw_path, raw_query=request.raw_query,
                            headers=request.headers, body=request.body, region=target.region,
                            service=target.signing_service, credentials=credentials)
        except SignatureError as exc:
            return json_reply(403, {"Message": "Forbidden"}, ("x-mlfn-error", str(exc)))
        if identity is None:
            return caller
        check = getattr(target, "denied", None)
        reason = check(identity) if check is not None else None
        if reason:
            return json_reply(403, {"Message": FUNCTION_URL_DENIED},
                              ("x-amzn-errortype", "AccessDeniedException"), ("x-mlfn-error", reason))
        return dataclasses.replace(caller, user_arn=identity.arn, user_id=identity.user_id)

    async def _identity(self, target: Target, request: GatewayRequest) -> Identity | None:
        """The control plane's IAM identity behind the request's access key (None: an emulator key, or unknown)."""
        scope = caller_scope(request.headers, request.raw_query)
        if self.callers is None or scope is None or scope.access_key in self.credentials:
            return None
        function, qualifier = getattr(target, "policy_resource", None) or (None, None)
        return await self.callers.lookup(scope, function, qualifier)
