"""Turning a `Reply` into an HTTP response, and an exception into the `Reply` the caller gets.

Every answer of the core is a `Reply` (status, body, content type, extra headers). `reply_headers` gives its
response headers (content type and length, the request id, its own); `send_reply` sends it over ASGI.
`failure_reply` maps what a handler raised: `RequestError` to its 4xx with a JSON body (408 and 413 close the
connection), `NotReady` to 503 with Retry-After, `ModelError` to 500 with its message and the request id,
anything else to 500 `{"error": "internal error", "request_id": ...}` with the traceback only in the log.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from .asgi_types import Send
from .errors import ModelError, RequestError
from .logs import logger
from .service import Reply

log = logger("mlfn.runtime")

JSON = "application/json"
RETRY_AFTER_S = "1"


class NotReady(Exception):
    """The model is still loading (or failed to load): 503 with Retry-After."""


def json_reply(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(payload), JSON, headers or {})


def not_ready_reply(request_id: str | None = None) -> Reply:
    body: dict[str, str] = {"error": "the model is not ready yet"}
    if request_id is not None:
        body["request_id"] = request_id
    return json_reply(503, body, {"retry-after": RETRY_AFTER_S})


def failure_reply(exc: Exception, request_id: str, method: str, path: str) -> Reply:
    """The reply for a request whose handler raised: 4xx for the caller's mistakes, 503 while loading, 500."""
    if isinstance(exc, RequestError):
        extra = {"connection": "close"} if exc.status in (408, 413) else None
        return json_reply(exc.status, exc.to_json(), extra)
    if isinstance(exc, NotReady):
        return not_ready_reply(request_id)
    if isinstance(exc, ModelError):
        log.error("request %s: %s %s: model error: %s", request_id, method, path, exc.message)
        return json_reply(500, {**exc.to_json(), "request_id": request_id})
    log.error("request %s: %s %s failed", request_id, method, path, exc_info=exc)
    return json_reply(500, {"error": "internal error", "request_id": request_id})


def reply_headers(reply: Reply, request_id: str) -> list[tuple[bytes, bytes]]:
    """A Reply's response headers: content type and length, the request id, then its own."""
    headers = [
        (b"content-type", reply.content_type.encode("latin-1")),
        (b"content-length", str(len(reply.body)).encode("latin-1")),
        (b"x-request-id", request_id.encode("latin-1")),
    ]
    for key, value in reply.headers.items():
        headers.append((key.lower().encode("latin-1"), str(value).encode("latin-1")))
    return headers


async def send_reply(send: Send, reply: Reply, request_id: str, *, head: bool = False) -> None:
    """Send a Reply with its length, content type, extra headers and the request id."""
    await send({"type": "http.response.start", "status": reply.status, "headers": reply_headers(reply, request_id)})
    await send({"type": "http.response.body", "body": b"" if head else reply.body})
