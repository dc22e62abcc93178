"""A lean HTTP/1.1 server for one ASGI app: what `python -m mlfn.runtime.server` runs in place of uvicorn.

Why: on a small model, uvicorn's per-request work (a request-cycle object, a task per request, flow-control
bookkeeping, generic header handling) costs more than the model and mlfn's own serving core together. This
server is an asyncio `Protocol` around httptools' parser (the one uvicorn uses) that builds a minimal ASGI
scope and calls the app's coroutine directly: when the coroutine finishes without waiting for anything (a
quick model run inline, a health check) the response is written in the same turn of the event loop, with
no task, no scheduling and one `write` call. A coroutine that does wait (a model run on the thread pool, a
batch) is resumed by a small task of its own. An app that offers `quick_reply` (mlfn's ServingCore, for model
calls that run inline) answers those synchronously, with no ASGI scope messages at all, and gives back the
same status, headers and body its ASGI path would; every other request goes through the ASGI app, so
responses, errors, metrics and docs are the same as under uvicorn (`MLFN_HTTP=uvicorn` switches back).

HTTP/1.1 as clients use it: keep-alive (closed after `keep_alive_s` idle), pipelined requests answered in
order, Content-Length and chunked request bodies, `Expect: 100-continue`, bodies over `body_limit()` refused
with the app's own 413 before they are read (by Content-Length) or once they pass it (chunked), HTTP/1.0
with and without keep-alive, HEAD, chunked responses when the app gives no Content-Length, a `date` header,
400 and a close on a malformed request, 431 and a close on a head over 64 KiB or 256 headers. A body must
arrive in full within `body_timeout_s` of its head, else 408 and a close (a client that stops half-way never
holds a connection for good); a chunk whose declared size would take the body past the limit is refused with
the 413 at once, as a Content-Length over it is. On
`shutdown()` it stops accepting, closes idle connections, lets requests in progress finish (up to
`graceful_s`), then runs the ASGI lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

from .coroutines import first_step, step_to_end

log = logging.getLogger("mlfn.runtime.http")

ASGIApp = Callable[..., Coroutine[Any, Any, None]]  # (scope, receive, send): an ASGI 3 app
# An app may also offer `quick_reply(method, path, headers, body) -> (status, headers, body) | None`: a request it
# can answer synchronously skips the ASGI exchange (mlfn's ServingCore does, for model calls that run inline).
QuickReply = Callable[[str, str, list[tuple[bytes, bytes]], bytes], tuple[int, list[tuple[bytes, bytes]], bytes] | None]
HIGH_WATER = 64 * 1024
MAX_PIPELINED = 32  # complete requests queued on one connection before it stops reading
ASGI_INFO = {"version": "3.0", "spec_version": "2.3"}
_STATUS_LINES: dict[int, bytes] = {}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
MAX_HEAD_BYTES = 64 * 1024  # request line and headers; more gets 431 and a close
MAX_HEADERS = 256


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the request's head passed MAX_HEAD_BYTES or MAX_HEADERS."""


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
    return line


class DateHeader:
    """The `date` header line, rebuilt at most once a second."""

    def __init__(self) -> None:
        self._second = 0
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"date: " + formatdate(now, usegmt=True).encode("latin-1") + b"\r\n"
        return self._line


class _Request:
    """One parsed request: its scope, its body chunks, and how its response is going."""

    __slots__ = ("body", "chunked", "chunks", "expect", "keep_alive", "scope", "size", "started", "too_large")

    def __init__(self, scope: dict[str, Any], keep_alive: bool) -> None:
        self.scope = scope
        self.keep_alive = keep_alive
        self.chunks: list[bytes] = []
        self.size = 0
        self.body = b""
        self.too_large = False
        self.started = False
        self.expect = False
        self.chunked = False


class Server:
    """The listening side: accepts connections on given sockets and tracks them for a graceful stop."""

    def __init__(self, app: ASGIApp, *, body_limit: Callable[[], int], keep_alive_s: float = 75.0,
                 body_timeout_s: float = 60.0, graceful_s: float = 25.0,
                 refuses_large: Callable[[str], bool] | None = None) -> None:
        """`body_limit()` is the largest body read; `refuses_large(path)` says whether the app answers an
        over-limit body on that path with its own 413 (by Content-Length, or by counting); where it does not,
        this server answers 413 itself. A connection idle for `keep_alive_s`, or a body not complete
        `body_timeout_s` after its head, is closed."""
        self.app = app
        self.body_limit = body_limit
        self.keep_alive_s = keep_alive_s
        self.body_timeout_s = body_timeout_s
        self.graceful_s = graceful_s
        self.refuses_large = refuses_large or (lambda path: False)
        self.connections: set[HttpProtocol] = set()
        self.date = DateHeader()
        self._servers: list[asyncio.AbstractServer] = []
        self._stopping: asyncio.Event | None = None
        self._lifespan: _Lifespan | None = None

    async def serve(self, sockets: list[Any], *, lifespan: bool = True) -> None:
        """Serve until `shutdown()` (or a lifespan startup failure)."""
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if lifespan:
            self._lifespan = _Lifespan(self.app)
            await self._lifespan.startup()
        for sock in sockets:
            self._servers.append(await loop.create_server(lambda: HttpProtocol(self), sock=sock, backlog=2048))
        await self._stopping.wait()
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.close_when_idle()
        deadline = loop.time() + self.graceful_s
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        if self._lifespan is not None:
            await self._lifespan.shutdown()

    def shutdown(self) -> None:
        """Begin a graceful stop (call on the loop's thread)."""
        if self._stopping is not None:
            self._stopping.set()


class _Lifespan:
    """Runs the app's ASGI lifespan protocol: startup before serving, shutdown after."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            await self.app({"type": "lifespan", "asgi": ASGI_INFO, "state": {}}, self._inbox.get, self._outbox.put)
        except Exception:  # an app without lifespan support: fine, as under uvicorn's "auto"
            log.debug("the app does not support the lifespan protocol", exc_info=True)
        await self._outbox.put({"type": "lifespan.gone"})

    async def startup(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._outbox.get()
        if answer["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"application startup failed: {answer.get('message', '')}")

    async def shutdown(self) -> None:
        if self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self._outbox.get(), 10)
        except TimeoutError:
            self._task.cancel()


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.app = server.app
        self.quick: QuickReply | None = getattr(server.app, "quick_reply", None)
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[_Request] = deque()
        self.current: _Request | None = None  # being parsed
        self.active: _Request | None = None  # being answered
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.closing = False
        self.reading_paused = False
        self.writable: asyncio.Future[None] | None = None
        self.lost: asyncio.Future[None] | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None  # armed while a body spans more than one read
        self.chunk_open = False  # a chunk's size line was read in this read and its data is not all in
        self.chunk_read = 0  # bytes of that chunk's data in this read
        self.tail = b""  # the end of the previous read, while a chunked body is coming in
        self.last_active = 0.0
        self.server_addr: tuple[str, int] | None = None
        self.client_addr: tuple[str, int] | None = None

    # ------------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        sockname = transport.get_extra_info("sockname")
        peername = transport.get_extra_info("peername")
        self.server_addr = tuple(sockname[:2]) if isinstance(sockname, tuple) else None  # type: ignore[assignment]
        self.client_addr = tuple(peername[:2]) if isinstance(peername, tuple) else None  # type: ignore[assignment]
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.closing = True
        if self.idle is not None:
            self.idle.cancel()
        if self.body_timer is not None:
            self.body_timer.cancel()
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        if self.writable is None or self.writable.done():
            self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def _arm_idle(self) -> None:
        """Note activity; one timer per connection checks it (no timer is made and cancelled per request)."""
        self.last_active = self.loop.time()
        if self.idle is None:
            self.idle = self.loop.call_later(self.server.keep_alive_s, self._idle_timeout)

    def _idle_timeout(self) -> None:
        self.idle = None
        if self.closing:
            return
        quiet_for = self.loop.time() - self.last_active
        if quiet_for >= self.server.keep_alive_s and self.active is None and not self.queue and self.current is None:
            self._close()
            return
        wait = max(self.server.keep_alive_s - quiet_for, 0.5)
        self.idle = self.loop.call_later(wait, self._idle_timeout)

    def close_when_idle(self) -> None:
        """Shutdown: close now if nothing is in progress, else after the response in progress."""
        self.closing = True
        if self.active is None and not self.queue:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, b'{"error":"protocol upgrades are not supported"}')
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):  # httptools wraps what a callback raises
                self._reject(431, b'{"error":"request line and headers too large: the limit is %d bytes and %d '
                             b'headers"}' % (MAX_HEAD_BYTES, MAX_HEADERS))
            else:
                self._reject(400, b'{"error":"malformed HTTP request: ' + _quote(str(exc)) + b'"}')
            return
        request = self.current
        if request is None:  # the usual case: every request read so far is complete
            return
        if self.body_timer is None:
            self.body_timer = self.loop.call_later(self.server.body_timeout_s, self._body_timeout, request)
        if request.chunked:
            if self.chunk_open:
                self._check_chunk_size(request, data)
            self.tail = data[-64:]

    def _check_chunk_size(self, request: _Request, data: bytes) -> None:
        """A chunk's size line came in this read and its data has not all arrived: refuse it at once when its
        declared size would take the body past the limit (httptools does not tell the size; its line is the
        one that ends right before this chunk's `chunk_read` bytes of data)."""
        self.chunk_open = False
        text = (self.tail + data[: len(data) - self.chunk_read])[:-2]  # up to the size line's CRLF
        start = text.rfind(b"\n")
        if start < 0:  # a line longer than what is kept (long extensions): the counting in on_body applies
            return
        digits = text[start + 1 :].split(b";", 1)[0].strip()
        try:
            declared = int(digits, 16)
        except ValueError:
            return
        limit = self.server.body_limit()
        if request.size - self.chunk_read + declared > limit:
            request.too_large = True
            self._dispatch_early(request, f"a chunk of {declared} bytes".encode())

    def _body_timeout(self, request: _Request) -> None:
        """The body of `request` is still not complete: answer 408 and close."""
        self.body_timer = None
        if self.current is not request or self.closing:
            return
        if self.reading_paused:  # this server stopped reading (requests queued ahead): not the client's fault
            self.body_timer = self.loop.call_later(self.server.body_timeout_s, self._body_timeout, request)
            return
        self.current = None
        self._reject(408, b'{"error":"request body not received within %g seconds of its head",'
                     b'"timeout_s":%g}' % (self.server.body_timeout_s, self.server.body_timeout_s))

    def _reject(self, status: int, body: bytes) -> None:
        """Answer a request the parser refused, and close (what follows on the connection cannot be trusted)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.active is None:
            self.transport.write(
                status_line(status) + b"content-type: application/json\r\nconnection: close\r\ncontent-length: "
                + str(len(body)).encode() + b"\r\n" + self.server.date.line() + b"\r\n" + body)
        self.transport.pause_reading()
        self.closing = True
        if self.active is None:
            self._close()

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.head_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > MAX_HEAD_BYTES:
            raise _HeadTooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))
        self.head_size += len(name) + len(value)
        if self.head_size > MAX_HEAD_BYTES or len(self.headers) > MAX_HEADERS:
            raise _HeadTooLarge()

    def on_headers_complete(self) -> None:
        url = self.url
        if url[:1] != b"/":
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path or b"/", parsed.query or b""
        else:
            raw_path, _, query = url.partition(b"?")
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        scope = {
            "type": "http", "asgi": ASGI_INFO, "http_version": self.parser.get_http_version(),
            "server": self.server_addr, "client": self.client_addr, "scheme": "http",
            "method": self.parser.get_method().decode("ascii"), "root_path": "", "path": path,
            "raw_path": raw_path, "query_string": query, "headers": self.headers,
        }
        request = _Request(scope, self.parser.should_keep_alive())
        self.current = request
        limit = self.server.body_limit()
        length = expect = None
        for name, value in self.headers:
            if name == b"content-length":
                length = value
            elif name == b"expect":
                expect = value
            elif name == b"transfer-encoding":
                request.chunked = True
                self.chunk_open = False
        if length is not None and length.isdigit() and int(length) > limit:
            request.too_large = True  # the app refuses it by its Content-Length, before any byte is read
            self._dispatch_early(request)
            return
        if expect is not None and expect.lower() == b"100-continue" and self.transport is not None:
            self.transport.write(CONTINUE)

    def on_chunk_header(self) -> None:
        self.chunk_open = True
        self.chunk_read = 0

    def on_chunk_complete(self) -> None:
        self.chunk_open = False

    def on_body(self, body: bytes) -> None:
        request = self.current
        if request is None or request.too_large:
            return
        self.chunk_read += len(body)
        request.size += len(body)
        request.chunks.append(body)
        if request.size > self.server.body_limit():
            request.too_large = True  # the app refuses it once it counts past the limit
            self._dispatch_early(request)

    def on_message_complete(self) -> None:
        request = self.current
        self.current = None
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None
        if request is None or request.too_large:
            return
        chunks = request.chunks
        request.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        request.chunks = []
        self._enqueue(request)

    def _dispatch_early(self, request: _Request, declared: bytes = b"") -> None:
        """A body over the limit: answer now (the app's 413, or ours), read nothing more, close afterwards.
        A `declared` chunk too large gets ours (the app, counting, would see only what came so far)."""
        request.body = b"".join(request.chunks)
        request.chunks = []
        request.keep_alive = False
        self.current = None
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None
        if self.transport is not None:
            self.transport.pause_reading()
        self.parser = httptools.HttpRequestParser(self)  # whatever follows is never parsed
        if not declared and self.server.refuses_large(request.scope["path"]):
            self._enqueue(request)
        elif self.active is None or declared:
            limit = self.server.body_limit()
            body = (b'{"error":"request body too large: the limit is %d bytes (server.max_body_bytes)","limit":%d'
                    % (limit, limit))
            self._reject(413, body + (b',"received":"%b"}' % declared if declared else b"}"))

    # ------------------------------------------------------------------ running the app

    def _enqueue(self, request: _Request) -> None:
        self.queue.append(request)
        if len(self.queue) > MAX_PIPELINED and self.transport is not None and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        if self.active is None:
            self._next()

    def _next(self) -> None:
        """Answer queued requests in order; each runs to completion here unless its app call has to wait."""
        while self.queue and self.active is None:
            if self.transport is None or self.transport.is_closing():
                self.queue.clear()
                return
            request = self.queue.popleft()
            if self.reading_paused and len(self.queue) <= MAX_PIPELINED // 2 and self.transport is not None:
                self.reading_paused = False
                self.transport.resume_reading()
            self.active = request
            if self.quick is not None and not request.too_large and self._answered_quickly(request):
                continue
            exchange = _Exchange(self, request)
            coro = self.app(request.scope, exchange.receive, exchange.send)
            try:
                finished, awaited = first_step(coro)
            except BaseException as exc:
                self._crashed(exchange.request, exchange.started, exc)
                self._finished(exchange)
                continue
            if finished:
                self._finished(exchange)
                continue
            self.loop.create_task(self._resume(coro, awaited, exchange))
            return

    async def _resume(self, coro: Any, awaited: Any, exchange: _Exchange) -> None:
        """Drive an app coroutine that waited on a future: resume it whenever what it awaits is done."""
        try:
            await step_to_end(coro, awaited)
        except asyncio.CancelledError:  # the server is stopping with this request unanswered (its client left)
            exchange.request.keep_alive = False
            self._finished(exchange)
            with contextlib.suppress(RuntimeError):
                coro.close()  # the app's own cleanup (finally blocks) runs; not logged as a crash
            raise
        except BaseException as exc:
            self._crashed(exchange.request, exchange.started, exc)
        self._finished(exchange)
        self._next()

    def _answered_quickly(self, request: _Request) -> bool:
        """Let the app answer at once through its `quick_reply` (see `ServingCore.quick_reply`); False when it
        declines and the request goes through the ASGI exchange."""
        scope = request.scope
        assert self.quick is not None
        try:
            answer = self.quick(scope["method"], scope["path"], scope["headers"], request.body)
        except Exception as exc:  # the app's own fault: a 500, as for an ASGI app that raises
            self._crashed(request, False, exc)
            self._settle(request)
            return True
        if answer is None:
            return False
        status, headers, body = answer
        head, _ = response_head(request, status, headers, False, self.server.date)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head + body)
        self._settle(request)
        return True

    def _crashed(self, request: _Request, started: bool, exc: BaseException) -> None:
        """The app raised: log it, answer 500 unless a response has begun, and close after this request."""
        log.error("the app raised while answering %s %s", request.scope["method"], request.scope["path"],
                  exc_info=exc)
        if not started and self.transport is not None and not self.transport.is_closing():
            body = b'{"error":"internal error"}'
            self.transport.write(status_line(500) + b"content-type: application/json\r\ncontent-length: "
                                 + str(len(body)).encode() + b"\r\n" + self.server.date.line() + b"\r\n" + body)
        request.keep_alive = False

    def _finished(self, exchange: _Exchange) -> None:
        exchange.done = True
        if exchange.started and not exchange.complete:
            exchange.request.keep_alive = False  # the app stopped mid-response: the framing is lost
        self._settle(exchange.request)

    def _settle(self, request: _Request) -> None:
        """The response to `request` is out: close the connection, or wait for the next request."""
        self.active = None
        if not request.keep_alive or (self.closing and not self.queue):
            self._close()
        else:
            self._arm_idle()


def response_head(request: _Request, status: int, headers: Iterable[tuple[bytes, bytes]], head: bool,
                  date: DateHeader) -> tuple[bytes, bool]:
    """The status line and headers for `request`'s response, and whether its body goes chunked.

    Adds what HTTP/1.1 framing needs: chunked encoding when no content-length is given, `connection: close`
    when the connection ends after this response (and marks the request so), keep-alive for HTTP/1.0.
    """
    parts = [status_line(status)]
    has_length = said_close = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            has_length = True
        elif lowered == b"connection" and value.lower() == b"close":
            request.keep_alive = False
            said_close = True
        parts += (name, b": ", value, b"\r\n")
    chunked = False
    if not has_length and not head and status >= 200 and status not in (204, 304):
        if request.scope["http_version"] == "1.1":
            chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            request.keep_alive = False
    if not request.keep_alive and not said_close:
        parts.append(b"connection: close\r\n")
    elif request.scope["http_version"] == "1.0":
        parts.append(b"connection: keep-alive\r\n")
    parts += (date.line(), b"\r\n")
    return b"".join(parts), chunked


class _Exchange:
    """ASGI `receive` and `send` for one request on a connection."""

    __slots__ = ("chunked", "complete", "conn", "done", "head", "pending", "received", "request", "started")

    def __init__(self, conn: HttpProtocol, request: _Request) -> None:
        self.conn = conn
        self.request = request
        self.received = False
        self.started = False
        self.complete = False
        self.done = False
        self.chunked = False
        self.head = request.scope["method"] == "HEAD"
        self.pending = b""

    async def receive(self) -> dict[str, Any]:
        if not self.received:
            self.received = True
            return {"type": "http.request", "body": self.request.body, "more_body": False}
        conn = self.conn
        if not self.complete and not conn.closing:  # only a disconnect can come after the body
            if conn.lost is None:
                conn.lost = conn.loop.create_future()
            await conn.lost
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        transport = self.conn.transport
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            self.pending, self.chunked = response_head(
                self.request, message["status"], message.get("headers", ()), self.head, self.conn.server.date)
            return
        if kind != "http.response.body":
            return
        if not self.started or self.complete:
            raise RuntimeError("http.response.body sent before http.response.start or after the last body")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.head:
            body = b""
        elif self.chunked:
            body = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + (b"" if more else b"0\r\n\r\n")
        if not more:
            self.complete = True
        data = self.pending + body if self.pending else body
        self.pending = b""
        if transport is None or transport.is_closing():
            return
        if data:
            transport.write(data)
        writable = self.conn.writable
        if more and writable is not None and not writable.done():
            await writable


def _quote(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace('"', "'").encode("ascii", "replace")[:200]
