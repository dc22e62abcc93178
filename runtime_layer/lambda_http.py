"""Function URL and HTTP API (payload format 2.0) events served by the ASGI core without Mangum or asyncio.

The Lambda handler's usual event is a Function URL's, and the core serves it inline (one request per
sandbox): its coroutine never waits on anything, so it can be run to the end with one `send(None)`, and
the event and response translation takes a few dictionary operations. That keeps Mangum and asyncio (about
150 ms of imports) out of the init phase and a few tens of microseconds out of each request. Mangum still
serves everything else (API Gateway REST and payload 1.0, ALB, the docs pages), imported on first use.

The translation is the one Mangum makes for these events: headers lower-cased (`cookies` joined into a
`cookie` header), a base64 body decoded, the Lambda event and context in the scope as `aws.event` and
`aws.context`; in the response repeated headers joined with ", ", `set-cookie` headers as `cookies`, a
text body (by content type) as text and anything else base64 with `isBase64Encoded: true`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .coroutines import run_to_end

ASGI_INFO = {"version": "3.0", "spec_version": "2.0"}


def is_payload_v2(event: Any) -> bool:
    """A Function URL or HTTP API event in payload format 2.0."""
    return isinstance(event, dict) and event.get("version") == "2.0" and "http" in event.get("requestContext", {})


def event_of(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, *,
             source_ip: str = "", request_id: str = "") -> dict[str, Any]:
    """A Function URL event (payload format 2.0) for a request made here: a direct invocation's JSON served as
    `POST /invocations`, the deploy's health probe. A body that is not UTF-8 text goes base64-encoded."""
    try:
        text, encoded = body.decode(), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": dict(headers or {}),
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip},
                           "requestId": request_id, "routeKey": "$default", "stage": "$default"},
        "body": text, "isBase64Encoded": encoded,
    }


def scope_of(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The ASGI scope of a payload 2.0 event."""
    http = event["requestContext"]["http"]
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])
    host = headers.get("host", "")
    forwarded_port = headers.get("x-forwarded-port", "")
    port = int(forwarded_port) if forwarded_port.isdigit() else 443
    return {
        "type": "http", "method": http["method"], "http_version": "1.1",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "path": http["path"], "raw_path": None, "root_path": "",
        "scheme": headers.get("x-forwarded-proto", "https"),
        "query_string": (event.get("rawQueryString") or "").encode("latin-1"),
        "server": (host.split(":")[0], port), "client": (http.get("sourceIp", ""), 0),
        "asgi": ASGI_INFO, "aws.event": event, "aws.context": context,
    }


def body_of(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def response_of(status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes,
                text_types: Sequence[str]) -> dict[str, Any]:
    """The payload 2.0 response for an ASGI response."""
    out: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "set-cookie":
            cookies.append(value)
        elif name in out:
            out[name] = f"{out[name]}, {value}"
        else:
            out[name] = value
    if "content-type" not in out and body:
        out["content-type"] = "application/json"
    text, encoded = "", False
    if body:
        content_type = out.get("content-type", "")
        if any(t in content_type for t in text_types) and "content-encoding" not in out:
            try:
                text = body.decode()
            except UnicodeDecodeError:
                text, encoded = base64.b64encode(body).decode(), True
        else:
            text, encoded = base64.b64encode(body).decode(), True
    response: dict[str, Any] = {"statusCode": status, "headers": out, "body": text, "isBase64Encoded": encoded}
    if cookies:
        response["cookies"] = cookies
    return response


def serve_v2(app: Callable[..., Coroutine[Any, Any, None]], event: dict[str, Any], context: Any,
             text_types: Sequence[str]) -> dict[str, Any]:
    """Run the ASGI app on one payload 2.0 event and return its response."""
    body = body_of(event)
    started: dict[str, Any] = {}
    chunks: list[bytes] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    run_to_end(app(scope_of(event, context), receive, send))
    if not started:
        raise RuntimeError("the app returned without starting a response")
    return response_of(started["status"], started.get("headers", ()), b"".join(chunks), text_types)
