"""Reading a request body from ASGI `receive`: the size limit (413), Content-Encoding (gzip, deflate), and a
deadline for servers that have none of their own.

A body over `server.max_body_bytes` is refused by its Content-Length before anything is read, by counting
while a chunked body arrives, and again after decompression (a small gzip bomb stays small).
"""

from __future__ import annotations

from collections.abc import Mapping

from .asgi_types import ASGIApp, Message, Receive, Scope, Send
from .errors import RequestError

WBITS = {"gzip": 16 + 15, "x-gzip": 16 + 15, "deflate": 15}  # zlib's window bits per Content-Encoding


class ClientGone(Exception):
    """The client disconnected before its request body arrived: nobody is left to answer."""


def too_large(limit: int, received: str) -> RequestError:
    return RequestError(
        f"request body too large: the limit is {limit} bytes (server.max_body_bytes)",
        413, limit=limit, received=received,
    )


async def read_body(headers: Mapping[str, str], receive: Receive, limit: int) -> bytes:
    """The whole request body, refused with 413 once it passes `limit` bytes, decompressed if it says so."""
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise RequestError("invalid Content-Length header", 400, received=length[:40])
        if int(length) > limit:
            raise too_large(limit, f"Content-Length {length}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise too_large(limit, f"more than {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoding = headers.get("content-encoding")
    if encoding:
        encoding = encoding.strip().lower()
        if encoding != "identity":
            body = decompress(body, encoding, limit)
    return body


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """A gzip or deflate body, never inflated past `limit` bytes (a small bomb stays small)."""
    wbits = WBITS.get(encoding)
    if wbits is None:
        raise RequestError(f"unsupported Content-Encoding {encoding!r}", 415, expected="gzip, deflate or identity")
    import zlib  # on first use: most bodies are not compressed, and the Lambda init never needs it

    decoder = zlib.decompressobj(wbits)
    try:
        out: bytes = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RequestError(f"body is not valid {encoding} data: {exc}", 400) from None
    if len(out) > limit or decoder.unconsumed_tail:
        raise too_large(limit, f"more than {limit} bytes once decompressed")
    return out


class BodyDeadline:
    """ASGI middleware for a server with no body timeout of its own (uvicorn): a request body that has not
    arrived in full `seconds` after the request reached the app gets 408 and a close."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import asyncio

        deadline = asyncio.get_running_loop().time() + self.seconds
        complete = False

        async def receive_in_time() -> Message:
            nonlocal complete
            if complete:  # after the body only a disconnect comes, whenever it comes
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestError(f"request body not received within {self.seconds:g} seconds of its head", 408,
                                   timeout_s=self.seconds) from None
            complete = not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)
