"""HTTP request <-> Lambda event, as a Function URL does it: API Gateway HTTP API payload format 2.0.

`request_event` builds the event (headers lower-cased with repeated ones comma-joined, cookies split out, query
parameters comma-joined, textual bodies as text and others base64 with `isBase64Encoded`). `http_response` maps the
function's result back: a result with `statusCode` is a structured response (headers, cookies, body, isBase64Encoded);
any other valid JSON is answered 200 `application/json` with the result as the body (a JSON string: its text, as
AWS answers it); anything else is a 502.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from mlfn.runtime.lambda_contract import is_text


@dataclass
class Caller:
    """Who signed the request (AWS_IAM), for `requestContext.authorizer.iam`."""

    access_key: str
    account_id: str
    user_arn: str
    user_id: str

    def to_json(self) -> dict[str, Any]:
        return {"accessKey": self.access_key, "accountId": self.account_id, "callerId": self.user_id,
                "cognitoIdentity": None, "principalOrgId": None, "userArn": self.user_arn, "userId": self.user_id}


@dataclass
class HttpReply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def request_event(*, method: str, raw_path: str, raw_query: str, headers: Iterable[tuple[str, str]], body: bytes,
                  source_ip: str, url_id: str, domain: str, request_id: str, caller: Caller | None) -> dict[str, Any]:
    """The payload-format-2.0 event for one HTTP request."""
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = joined
    if raw_query:
        params: dict[str, str] = {}
        for k, v in parse_qsl(raw_query, keep_blank_values=True):
            params[k] = f"{params[k]},{v}" if k in params else v
        event["queryStringParameters"] = params
    context: dict[str, Any] = {
        "accountId": caller.account_id if caller else "anonymous",
        "apiId": url_id,
        "domainName": domain,
        "domainPrefix": url_id,
        "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                 "userAgent": joined.get("user-agent", "")},
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(time.time() * 1000),
    }
    if caller:
        context["authorizer"] = {"iam": caller.to_json()}
    event["requestContext"] = context
    if body:
        if is_text(joined.get("content-type", "")):
            try:
                event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        else:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        event["isBase64Encoded"] = False
    return event


def _bad(reason: str) -> HttpReply:
    return HttpReply(502, [("content-type", "text/plain"), ("x-mlfn-error", reason)], b"Internal Server Error")


def http_response(payload: bytes) -> HttpReply:
    """The HTTP response for a function's successful result."""
    try:
        result = json.loads(payload) if payload.strip() else None
    except ValueError:
        return _bad("the function's result is not valid JSON")
    if not (isinstance(result, dict) and "statusCode" in result):
        # a string result is answered without its JSON quotes: AWS answers "hello" as `hello` (Content-Length 5,
        # LocalStack's AWS-validated snapshot), although the guide's example shows the quotes
        body = result.encode() if isinstance(result, str) else payload
        return HttpReply(200, [("content-type", "application/json")], body)
    status = result["statusCode"]
    if not isinstance(status, int) or not 100 <= status <= 599:
        return _bad(f"statusCode must be an integer from 100 to 599, got {status!r}")
    # format 2.0 has no multiValueHeaders (API Gateway's "Payload format differences"): one is ignored, as there
    headers = [(str(k).lower(), str(v)) for k, v in (result.get("headers") or {}).items()]
    headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
    raw = result.get("body")
    text = raw if isinstance(raw, str) else ("" if raw is None else json.dumps(raw))
    if result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return _bad("isBase64Encoded is true but the body is not base64")
    else:
        body = text.encode()
    return HttpReply(status, headers, body)
