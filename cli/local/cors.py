"""CORS as a Function URL applies it: Lambda answers preflight requests itself and adds the CORS headers to the
function's responses, from the URL's `Cors` configuration (AllowOrigins, AllowMethods, AllowHeaders, ExposeHeaders,
AllowCredentials, MaxAge). Without a configuration, nothing is added and OPTIONS reaches the function."""

from __future__ import annotations

from typing import Any

from .payload_v2 import HttpReply


def _allowed_origin(cors: dict[str, Any], origin: str) -> str | None:
    origins = cors.get("AllowOrigins") or []
    if "*" in origins:
        return origin if cors.get("AllowCredentials") else "*"
    return origin if origin in origins else None


def preflight(cors: dict[str, Any] | None, method: str, headers: dict[str, str]) -> HttpReply | None:
    """The answer to a CORS preflight request, or None when the request is not one (or CORS is off)."""
    if not cors or method != "OPTIONS" or "access-control-request-method" not in headers or "origin" not in headers:
        return None
    reply = HttpReply(200, [], b"")
    origin = _allowed_origin(cors, headers["origin"])
    wanted = headers["access-control-request-method"].upper()
    methods = [m.upper() for m in cors.get("AllowMethods") or []]
    if origin is None or not ("*" in methods or wanted in methods):
        return reply  # no CORS headers: the browser refuses the call
    reply.headers += [("access-control-allow-origin", origin),
                      ("access-control-allow-methods", ",".join(methods) or wanted)]
    if cors.get("AllowHeaders"):
        reply.headers.append(("access-control-allow-headers", ",".join(cors["AllowHeaders"])))
    if cors.get("AllowCredentials"):
        reply.headers.append(("access-control-allow-credentials", "true"))
    if cors.get("MaxAge") is not None:
        reply.headers.append(("access-control-max-age", str(cors["MaxAge"])))
    return reply


def decorate(cors: dict[str, Any] | None, headers: dict[str, str], reply: HttpReply) -> None:
    """Add the CORS headers of an actual (non-preflight) response."""
    if not cors or "origin" not in headers:
        return
    origin = _allowed_origin(cors, headers["origin"])
    if origin is None:
        return
    reply.headers = [(k, v) for k, v in reply.headers if not k.startswith("access-control-")]
    reply.headers.append(("access-control-allow-origin", origin))
    if cors.get("ExposeHeaders"):
        reply.headers.append(("access-control-expose-headers", ",".join(cors["ExposeHeaders"])))
    if cors.get("AllowCredentials"):
        reply.headers.append(("access-control-allow-credentials", "true"))
    if origin != "*":
        reply.headers.append(("vary", "Origin"))
