"""A Lambda Function URL: HTTP request -> format-2.0 event -> the function's pool -> HTTP response.

Status codes as a BUFFERED Function URL answers them: the function's own status for a result; 502
`Internal Server Error` for a function error, a timeout, a crashed runtime or a failed init; 429 with Lambda's
TooManyRequestsException document when the concurrency cap is reached; 413 when the event (the request as JSON, body
base64-encoded if binary) exceeds 6 MB; a response over 6 MB is a function error (502). Emulator-only headers say what
happened: `x-mlfn-cold-start`, `x-mlfn-init-duration-ms` (or `x-mlfn-restore-duration-ms` for a SnapStart
restore), `x-mlfn-duration-ms`, `x-mlfn-error-type`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from .config import FunctionConfig
from .cors import decorate, preflight
from .gateway import MAX_REQUEST_BYTES, GatewayRequest, too_large
from .iam_callers import Identity
from .iam_policy import Decision, Request, evaluate
from .payload_v2 import Caller, HttpReply, http_response, request_event
from .pool import FunctionPool
from .sandbox import InvokeResult


class FunctionUrl:
    """The gateway target of one function alias."""

    signing_service: str | tuple[str, ...] = "lambda"
    max_request_bytes = MAX_REQUEST_BYTES

    def __init__(self, config: FunctionConfig, pool: FunctionPool) -> None:
        self.config = config
        self.pool = pool
        self.url_id = config.url_id
        self.auth_type = config.auth_type
        self.region = config.region
        # an alias with RoutingConfig: which of its versions' targets serves one request (default: this one)
        self.route: Callable[[FunctionUrl], FunctionUrl] = lambda target: target
        # told (this target, the one that ran, how it ended) after each call: the Lambda service metrics
        self.meter: Callable[[FunctionUrl, FunctionUrl, InvokeResult], None] = lambda called, ran, result: None

    def domain(self, host: str) -> str:
        return host.split(":", 1)[0] if host else f"{self.url_id}.lambda-url.{self.region}.localhost"

    @property
    def policy_resource(self) -> tuple[str, str | None]:
        return self.config.name, self.config.qualifier

    def denied(self, identity: Identity) -> str | None:
        """Since October 2025 an AWS_IAM URL's caller needs `lambda:InvokeFunctionUrl` and `lambda:InvokeFunction`
        (the latter as invoked through the URL), from its own policies or the function's resource-based policy."""
        checks = (("lambda:InvokeFunctionUrl", {"lambda:FunctionUrlAuthType": self.auth_type}),
                  ("lambda:InvokeFunction", {"lambda:InvokedViaFunctionUrl": "true"}))
        for action, context in checks:
            request = Request(identity.arns, action, self.config.arn, context)
            decision = evaluate(request, identity.policies, identity.resource_policy)
            if decision is not Decision.ALLOW:
                return f"{identity.arn} may not {action} on {self.config.arn} ({decision.value})"
        return None

    def preflight(self, request: GatewayRequest) -> HttpReply | None:
        """Lambda answers CORS preflight requests itself, before auth and without invoking the function."""
        return preflight(self.config.cors, request.method, {k.lower(): v for k, v in request.headers})

    async def handle(self, request: GatewayRequest, caller: Caller | None) -> HttpReply:
        reply = await self._invoke(request, caller)
        decorate(self.config.cors, {k.lower(): v for k, v in request.headers}, reply)
        return reply

    async def _invoke(self, request: GatewayRequest, caller: Caller | None) -> HttpReply:
        # what the Function URL front adds, as in AWS (the client's own values are replaced)
        added = {"x-forwarded-for": request.source_ip, "x-forwarded-proto": "https",
                 "x-forwarded-port": str(self.config.port), "x-amzn-trace-id": f"Root={_trace_root()}"}
        headers = [(k, v) for k, v in request.headers if k.lower() not in added] + list(added.items())
        event = request_event(method=request.method, raw_path=request.raw_path, raw_query=request.raw_query,
                              headers=headers, body=request.body, source_ip=request.source_ip,
                              url_id=self.url_id, domain=self.domain(request.host), request_id=request.request_id,
                              caller=caller)
        payload = json.dumps(event, separators=(",", ":")).encode()
        if len(payload) > MAX_REQUEST_BYTES:
            return too_large(MAX_REQUEST_BYTES)
        ran = self.route(self)
        result = await ran.pool.invoke(payload)
        self.meter(self, ran, result)
        reply = to_http(result)
        reply.headers += [("x-mlfn-cold-start", "true" if result.cold_start else "false")]
        if result.restore_ms:  # SnapStart: restored from the version's snapshot, no init phase
            reply.headers.append(("x-mlfn-restore-duration-ms", f"{result.restore_ms:.1f}"))
        elif result.cold_start:
            reply.headers.append(("x-mlfn-init-duration-ms", f"{result.init_ms:.1f}"))
        if result.duration_ms:
            reply.headers.append(("x-mlfn-duration-ms", f"{result.duration_ms:.1f}"))
        return reply


def _trace_root() -> str:
    return f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"


def to_http(result: InvokeResult) -> HttpReply:
    """The Function URL's answer for one invocation outcome."""
    if result.status == "ok":
        return http_response(result.payload)
    if result.status == "throttled":
        return HttpReply(429, [("content-type", "application/json"), ("x-amzn-errortype", "TooManyRequestsException")],
                         result.payload)
    # A response over 6 MB is a function error (Invoke: 200 + X-Amz-Function-Error, errorType
    # Function.ResponseSizeTooLarge), so the URL answers it like every other function error.
    return HttpReply(502, [("content-type", "text/plain"), ("x-mlfn-error-type", result.error_type or "Unhandled")],
                     b"Internal Server Error")
