"""Lambda's Invoke API on the data plane's sandboxes: the one implementation of its semantics.

The control plane is moto, whose `invoke` only echoes; `lambda_api.MlfnLambdaResponse.invoke` resolves the function
and qualifier there (404 `ResourceNotFoundException`), answers `DryRun` itself (204), and hands every other call to
the data plane's internal API (`POST /invoke`), which answers with `invoke` below as Lambda's Invoke does (Lambda API
Reference "Invoke"; botocore's `lambda` model for the error shapes):

- `RequestResponse`: 200 with the result and `X-Amz-Executed-Version`; a function error, timeout, crash or failed
  init is still 200, with `X-Amz-Function-Error: Unhandled` and the error document `{"errorType", "errorMessage"}` as
  the body; with `LogType: Tail`, `X-Amz-Log-Result` holds the base64 of the last 4 KB of the invocation's log;
- `Event`: 202 with an empty body at once; the function runs in the background, its errors go to its log only;
- 400 `InvalidRequestContentException` when the payload is not JSON;
- 413 `RequestTooLargeException` for a payload over 6,291,456 bytes;
- 429 `TooManyRequestsException` with the throttle's `Reason` when the concurrency cap is reached.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

from .gateway import MAX_REQUEST_BYTES
from .payload_v2 import HttpReply
from .pool import FunctionPool
from .sandbox import InvokeResult

INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
LOG_TAIL_BYTES = 4096  # LogResult: "The last 4 KB of the execution log, which is base64-encoded."
_JSON = ("content-type", "application/json")
_background: set[asyncio.Task[Any]] = set()  # Event invocations in flight


def _error(status: int, error_type: str, message: str) -> HttpReply:
    body = json.dumps({"Type": "User", "message": message}).encode()
    return HttpReply(status, [_JSON, ("x-amzn-errortype", error_type)], body)


async def invoke(pool: FunctionPool, payload: bytes, executed_version: str, *, event: bool = False,
                 log_tail: Callable[[str], bytes] | None = None,
                 meter: Callable[[InvokeResult], None] | None = None) -> HttpReply:
    """One Invoke of the function behind `pool` (`executed_version`: `$LATEST` when unqualified). `event`: run it in
    the background and answer 202; `log_tail(request_id)`: the invocation's log, for `LogType: Tail`; `meter`: told
    how each run ended (the Lambda service metrics)."""
    if len(payload) > MAX_REQUEST_BYTES:
        return _error(413, "RequestTooLargeException",
                      f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation")
    if payload.strip():
        try:
            json.loads(payload)
        except ValueError:
            return _error(400, "InvalidRequestContentException", "Could not parse request body into json")
    headers = [_JSON, ("x-amz-executed-version", executed_version)]
    if event:
        task = asyncio.create_task(pool.invoke(payload or b"{}"))
        _background.add(task)
        task.add_done_callback(_background.discard)
        if meter is not None:
            task.add_done_callback(lambda done: None if done.cancelled() or done.exception() else meter(done.result()))
        return HttpReply(202, headers, b"")
    result = await pool.invoke(payload or b"{}")
    if meter is not None:
        meter(result)
    if result.status == "throttled":
        return HttpReply(429, [_JSON, ("x-amzn-errortype", "TooManyRequestsException")], result.payload)
    if not result.ok:
        headers.append(("x-amz-function-error", "Unhandled"))
    if log_tail is not None:
        tail = log_tail(result.request_id)[-LOG_TAIL_BYTES:]
        headers.append(("x-amz-log-result", base64.b64encode(tail).decode()))
    return HttpReply(200, headers, result.payload)


def reply_to_json(reply: HttpReply) -> dict[str, Any]:
    return {"status": reply.status, "headers": reply.headers, "body": base64.b64encode(reply.body).decode()}


def reply_from_json(answer: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """The (status, headers, body) moto's server answers with; it takes the status from the headers too."""
    status = int(answer["status"])
    headers = {str(k): str(v) for k, v in answer["headers"]} | {"status": str(status)}
    return status, headers, base64.b64decode(answer["body"])
