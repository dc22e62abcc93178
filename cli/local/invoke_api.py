"""Lambda's Invoke API (RequestResponse) on the data plane's sandboxes, and the control plane's hand-off to it.

The control plane is moto, whose `invoke` only echoes; for a function the data plane runs, `MlfnLambdaResponse`
forwards the call (`forward_invoke`) to the data plane's admin API (`POST /invoke`), which answers as Lambda's
Invoke does (Lambda API Reference "Invoke"; botocore's `lambda` model for the error shapes):

- 200 with the result, `X-Amz-Executed-Version`; a function error, timeout, crash or failed init is still 200, with
  `X-Amz-Function-Error: Unhandled` and the error document `{"errorType", "errorMessage"}` as the body;
- 400 `InvalidRequestContentException` when the payload is not JSON;
- 413 `RequestTooLargeException` for a payload over 6,291,456 bytes;
- 429 `TooManyRequestsException` with the throttle's `Reason` when the concurrency cap is reached.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .gateway import MAX_REQUEST_BYTES
from .payload_v2 import HttpReply
from .pool import FunctionPool

_JSON = ("content-type", "application/json")


def _error(status: int, error_type: str, message: str) -> HttpReply:
    body = json.dumps({"Type": "User", "message": message}).encode()
    return HttpReply(status, [_JSON, ("x-amzn-errortype", error_type)], body)


async def invoke(pool: FunctionPool, payload: bytes, executed_version: str) -> HttpReply:
    """One synchronous Invoke of the function behind `pool` (`executed_version`: `$LATEST` when unqualified)."""
    if len(payload) > MAX_REQUEST_BYTES:
        return _error(413, "RequestTooLargeException",
                      f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation")
    if payload.strip():
        try:
            json.loads(payload)
        except ValueError:
            return _error(400, "InvalidRequestContentException", "Could not parse request body into json")
    result = await pool.invoke(payload or b"{}")
    if result.status == "throttled":
        return HttpReply(429, [_JSON, ("x-amzn-errortype", "TooManyRequestsException")], result.payload)
    headers = [_JSON, ("x-amz-executed-version", executed_version)]
    if not result.ok:
        headers.append(("x-amz-function-error", "Unhandled"))
    return HttpReply(200, headers, result.payload)


def reply_to_json(reply: HttpReply) -> dict[str, Any]:
    return {"status": reply.status, "headers": reply.headers, "body": base64.b64encode(reply.body).decode()}


def forward_invoke(state: Path | None, function_name: str, qualifier: str | None,
                   payload: bytes) -> tuple[int, dict[str, str], bytes] | None:
    """Run a RequestResponse Invoke on the data plane of `state`; None when no data plane runs the function."""
    if state is None:
        return None
    try:
        admin = json.loads((state / "data-plane" / "admin.json").read_text())
    except (OSError, ValueError):
        return None
    document = {"function": function_name, "qualifier": qualifier, "payload": base64.b64encode(payload).decode()}
    request = urllib.request.Request(
        f"{admin['url']}/invoke", data=json.dumps(document).encode(), method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {admin['token']}"})
    try:
        with urllib.request.urlopen(request, timeout=960) as response:  # longer than the longest function timeout
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):  # not registered there (404), or no data plane listening
        return None
    status = int(answer["status"])
    headers = {k: v for k, v in answer["headers"]} | {"status": str(status)}  # moto's server takes the status here
    return status, headers, base64.b64decode(answer["body"])
