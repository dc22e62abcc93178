"""The serving core: a plain ASGI app that routes every protocol straight to `InferenceService`.

Each request pays for one dictionary lookup (or a split of the path), one read of the body and two `send`
calls; no middleware stack, no request objects, no validation models. FastAPI is kept for what it is good
at, the OpenAPI docs: `mlfn.runtime.app` puts this core in front of a FastAPI app, and the Lambda handler
loads that FastAPI app only when someone asks for the docs. Anything the core does not route goes to the
`fallback` ASGI app when one is given.

Per request the core: takes the request id (incoming `x-request-id` of up to 128 safe characters, else the
Lambda request id, else a new uuid4) and returns it as `x-request-id`; refuses a body over
`server.max_body_bytes` with 413 (by Content-Length before reading, by counting while reading chunked
bodies, and after gzip/deflate decoding); runs the blocking service call in a thread pool sized to the CPU
share, or inline when recent calls were quick and the body is small (see `ServingCore._run`; always inline
on Lambda, which serves one request at a time); turns `RequestError` into its status with a JSON body,
`ModelError` into 500 with its message and the request id, and any other exception into 500
`{"error": "internal error", "request_id": ...}` with the traceback only in the log.
"""

from __future__ import annotations

import functools
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from . import __version__
from .errors import ModelError, RequestError
from .logs import logger
from .memory import LARGE_BYTES, release_soon
from .metrics import MetricsProvider, NoopMetrics
from .record import record
from .service import InferenceService, Reply

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future

    from .batching import Batcher

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logger("mlfn.runtime")

JSON = "application/json"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
RETRY_AFTER_S = "1"
INLINE_BELOW_S = 0.001  # service calls faster than this on average run on the event loop (see ServingCore._run)
INLINE_MAX_BODY = 64 * 1024
CONCURRENT_HOLD_S = 0.05  # with batching: how long concurrent arrivals keep calls on the pool
DECODERS: dict[str, Callable[[], Any]] = {
    "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "deflate": lambda: zlib.decompressobj(),
}


class ClientGone(Exception):
    """The client disconnected before its request body arrived: nobody is left to answer."""


class NotReady(Exception):
    """The model is still loading (or failed to load): 503 with Retry-After."""


@record(frozen=False, slots=True)
class Call:
    """One request as the route handlers see it."""

    scope: Scope
    receive: Receive
    headers: dict[str, str]
    request_id: str
    params: Mapping[str, str]


Handler = Callable[[Call], Awaitable[Reply]]


@record
class Route:
    """A route template (the metrics label) and its handler per HTTP method."""

    template: str
    methods: Mapping[str, Handler]


def load_service(model_dir: str | Path, metrics: MetricsProvider) -> InferenceService:
    """Build the service for a model directory, reporting model runs and the load time to `metrics`."""
    started = time.perf_counter()
    service = InferenceService.from_dir(model_dir, observer=metrics.inference)
    metrics.model_loaded(model_info(service), time.perf_counter() - started)
    return service


def model_info(service: InferenceService) -> dict[str, str]:
    """Labels describing the served model, for the metrics' model info."""
    spec = service.spec
    return {"name": spec.name, "target": spec.target, "producer": spec.producer, "version": __version__}


def json_reply(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(payload), JSON, headers or {})


def headers_of(scope: Scope) -> dict[str, str]:
    """Request headers by name (ASGI servers and Mangum give names lower-cased; a repeated header keeps its last)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC << 60))  # the version and variant bits of a 128-bit number
_UUID4_SET = (0x4000 << 64) | (0x8 << 60)  # version 4, RFC 4122 variant
_random_bits: Callable[[int], int] | None = None


def new_request_id() -> str:
    """A random version-4 UUID as 32 hex digits, like `uuid.uuid4().hex` without its system call per request."""
    global _random_bits
    if _random_bits is None:  # `random` on first use: the Lambda handler's init never needs it (Lambda gives ids)
        from random import getrandbits

        _random_bits = getrandbits
    return "%032x" % (_random_bits(128) & _UUID4_CLEAR | _UUID4_SET)


_NO_SCOPE: Scope = {}  # for a request served without an ASGI scope (`ServingCore.quick_reply`)


def request_id_of(scope: Scope, headers: Mapping[str, str]) -> str:
    """The caller's `x-request-id` when it is sane, else Lambda's request id, else a new uuid4."""
    incoming = headers.get("x-request-id")
    if incoming and REQUEST_ID.match(incoming):
        return incoming
    lambda_id = getattr(scope.get("aws.context"), "aws_request_id", None)
    if isinstance(lambda_id, str) and REQUEST_ID.match(lambda_id):
        return lambda_id
    return new_request_id()


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
    factory = DECODERS.get(encoding)
    if factory is None:
        raise RequestError(f"unsupported Content-Encoding {encoding!r}", 415, expected="gzip, deflate or identity")
    decoder = factory()
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


class ServingCore:
    """The ASGI app serving one InferenceService over KServe v1, OIP v2, SageMaker and Prometheus routes.

    `service` may be a loaded service or a Future of one (the server binds its port first and loads the
    model in the background; until it is done, readiness routes say 503 and inference answers 503 with
    Retry-After). `executor=None` makes a thread pool sized to the CPU share; `inline=True` runs the model
    on the event loop's thread instead (Lambda: one request per sandbox, so a pool only adds a hand-off).
    """

    def __init__(
        self,
        service: InferenceService | Future[InferenceService],
        *,
        metrics: MetricsProvider | None = None,
        executor: Executor | None = None,
        inline: bool = False,
        fallback: ASGIApp | None = None,
        fallback_paths: Collection[str] | None = None,
        access_log: bool = False,
    ) -> None:
        self.metrics: MetricsProvider = metrics if metrics is not None else NoopMetrics()
        self.fallback = fallback
        self.fallback_paths = fallback_paths
        self.access_log = access_log
        self._executor = executor if executor is not None or inline else _model_pool(_pool_size())
        self._owns_executor = executor is None and not inline
        self._service: InferenceService | None = None
        self._limit = 0
        self._typical_s = float("inf")  # average service call so far; inf until the first is measured
        self._calls = 0
        self._versions: tuple[str, ...] | None = None
        self._batcher: Batcher | None = None
        self._quick: dict[str, tuple[str, Callable[[bytes, Mapping[str, str]], Reply]]] = {}  # see quick_reply
        self._pooled = 0  # batched calls handed to the pool and not yet back
        self._same_turn = False  # a request already started in this turn of the event loop
        self._busy_until = 0.0  # until then, requests are taken to be concurrent (see _concurrent)
        self._release_due = False  # a large request was served: give memory back once its answer is out
        if not isinstance(service, InferenceService):  # a concurrent.futures.Future of one
            service.add_done_callback(self._on_loaded)
        else:
            self._adopt(service)
        self._static, self._v1, self._v2 = self._routes()

    # ------------------------------------------------------------------ the model

    def _on_loaded(self, future: Future[InferenceService]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._adopt(future.result())

    def _adopt(self, service: InferenceService) -> None:
        batcher = service.batcher  # see batching.install
        if service.observer is None and batcher is None:  # a service built elsewhere still reports its runs
            service.observer = self.metrics.inference
            self.metrics.model_loaded(model_info(service), None)
        if batcher is not None and self._executor is not None:
            # Batches form from requests waiting in pool threads at once: enough threads for a full batch.
            if self._owns_executor:
                old = self._executor
                self._executor = _model_pool(max(_pool_size(), min(batcher.max_rows, 64)))
                old.shutdown(wait=False)
            self._batcher = batcher
        self._limit = service.spec.settings.server.max_body_bytes
        name = service.spec.name
        self._quick = {
            f"/v1/models/{name}:predict": ("/v1/models/{name}:predict", functools.partial(service.v1_predict, name)),
            f"/v2/models/{name}/infer": ("/v2/models/{name}/infer", functools.partial(service.v2_infer, name)),
            "/invocations": ("/invocations", service.invocations),
        }
        versions = service.v2_model_metadata(service.spec.name).get("versions")
        self._versions = tuple(str(v) for v in versions) if versions else None
        self._service = service

    def body_limit(self) -> int:
        """The largest request body read (`server.max_body_bytes`; its default while the model loads)."""
        if self._limit:
            return self._limit
        from .settings import ServerSettings

        return ServerSettings().max_body_bytes

    @property
    def service(self) -> InferenceService | None:
        """The loaded service, or None while it loads."""
        return self._service

    def _ready_service(self) -> InferenceService:
        service = self._service
        if service is None:
            raise NotReady()
        return service

    def shutdown(self) -> None:
        """Stop the thread pool this core made (the server calls this after the last request)."""
        if self._owns_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., Reply], body: bytes, *args: Any) -> Reply:
        """Run one blocking service call: on the pool, or inline when it is known to be quick.

        Handing a call to a pool thread and back costs tens of microseconds, and far more on a loaded machine;
        for a model that answers in well under a millisecond that is most of the request. So a small body goes
        inline on the event loop once recent calls have taken less than INLINE_BELOW_S on average (no longer
        than uvicorn itself spends parsing a request); a large body, a slow model, or the first calls (nothing
        known yet) go to the pool, so the loop never stalls for long.
        """
        batcher = self._batcher
        quick = self._executor is None or (len(body) <= INLINE_MAX_BODY and self._typical_s < INLINE_BELOW_S)
        if batcher is None and quick:
            return self._timed(fn, body, *args)
        import asyncio  # here, not at the top: the Lambda handler runs inline and never imports it

        loop = asyncio.get_running_loop()
        if batcher is not None:
            # Batches form from calls waiting on the pool together. A lone request (nothing on the pool, no other
            # request this turn or lately) runs inline instead: it would be a batch of one after a hand-off. Only
            # while the batcher is idle, so the event loop never waits on a batch run by a pool thread (a call
            # whose await was cancelled leaves the pool count while its thread still runs).
            if quick and self._pooled == 0 and not self._concurrent(loop) and batcher.idle:
                return self._timed(fn, body, *args)
            ticket = batcher.expect()
            self._pooled += 1
            try:
                return await loop.run_in_executor(  # type: ignore[no-any-return]
                    self._executor, batcher.call, ticket, self._timed, fn, body, *args)
            finally:
                self._pooled -= 1
                batcher.withdraw(ticket)  # a call cancelled before its thread started must not be waited for
        return await loop.run_in_executor(self._executor, self._timed, fn, body, *args)

    def _concurrent(self, loop: Any) -> bool:
        """Requests are arriving together: two started in one turn of the event loop (as when many connections
        are ready at once) now or in the last CONCURRENT_HOLD_S seconds."""
        now = time.perf_counter()
        if self._same_turn:
            self._busy_until = now + CONCURRENT_HOLD_S
        else:
            self._same_turn = True
            loop.call_soon(self._next_turn)
        return now < self._busy_until

    def _next_turn(self) -> None:
        self._same_turn = False

    def _timed(self, fn: Callable[..., Reply], body: bytes, *args: Any) -> Reply:
        started = time.perf_counter()
        large = len(body) >= LARGE_BYTES
        try:
            reply = fn(body, *args)
            large = large or len(reply.body) >= LARGE_BYTES
            return reply
        finally:
            if large:
                self._release_due = True
            # The mean of the first 20 calls, then a moving average, of durations capped at 4x the threshold, so
            # that one call preempted by another process cannot send the next many to the pool. A lost update
            # between threads is harmless.
            took = min(time.perf_counter() - started, 4 * INLINE_BELOW_S)
            self._calls += 1
            typical = self._typical_s if self._calls > 1 else took
            self._typical_s = typical + (took - typical) * max(0.05, 1 / self._calls)

    # ------------------------------------------------------------------ routing

    def _routes(self) -> tuple[dict[str, Route], dict[str, Route], dict[str, Route]]:
        get, post = ("GET",), ("POST",)

        def route(template: str, methods: tuple[str, ...], handler: Handler) -> Route:
            return Route(template, dict.fromkeys(methods, handler))

        static = {
            "/": Route("/", {"GET": self._index, "POST": self._invocations}),
            "/ping": route("/ping", get, self._ping),
            "/invocations": route("/invocations", post, self._invocations),
            "/metrics": route("/metrics", get, self._metrics),
            "/v1/models": route("/v1/models", get, self._v1_list),
            "/v2": route("/v2", get, self._v2_server),
            "/v2/health/live": route("/v2/health/live", get, self._live),
            "/v2/health/ready": route("/v2/health/ready", get, self._ready),
            "/v2/repository/index": route("/v2/repository/index", post, self._v2_index),
        }
        v1 = {
            "model": route("/v1/models/{name}", get, self._v1_model),
            "predict": route("/v1/models/{name}:predict", post, self._v1_predict),
        }
        v2 = {
            "": route("/v2/models/{name}", get, self._v2_model),
            "ready": route("/v2/models/{name}/ready", get, self._v2_model_ready),
            "config": route("/v2/models/{name}/config", get, self._v2_model_config),
            "infer": route("/v2/models/{name}/infer", post, self._v2_infer),
            "v": route("/v2/models/{name}/versions/{version}", get, self._v2_model),
            "v/ready": route("/v2/models/{name}/versions/{version}/ready", get, self._v2_model_ready),
            "v/config": route("/v2/models/{name}/versions/{version}/config", get, self._v2_model_config),
            "v/infer": route("/v2/models/{name}/versions/{version}/infer", post, self._v2_infer),
        }
        return static, v1, v2

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for a path and its parameters, or None."""
        route = self._static.get(path)
        if route is not None:
            return route, {}
        if path.startswith("/v1/models/"):
            rest = path[11:]
            if rest.endswith(":predict"):
                name, key = rest[:-8], "predict"
            else:
                name, key = rest, "model"
            return (self._v1[key], {"name": name}) if name and "/" not in name else None
        if path.startswith("/v2/models/"):
            parts = path[11:].split("/")
            name = parts[0]
            if not name:
                return None
            params = {"name": name}
            prefix = ""
            if len(parts) >= 3 and parts[1] == "versions" and parts[2]:
                params["version"] = parts[2]
                parts = parts[3:]
                prefix = "v"
            else:
                parts = parts[1:]
            if len(parts) > 1:
                return None
            tail = parts[0] if parts else ""
            key = f"{prefix}/{tail}" if prefix and tail else prefix or tail
            found = self._v2.get(key)
            return (found, params) if found is not None else None
        return None

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        started = time.perf_counter()
        headers = headers_of(scope)
        rid = request_id_of(scope, headers)
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        method: str = scope["method"]
        found = self.match(path)
        if found is None:
            if self.fallback is not None and (self.fallback_paths is None or path in self.fallback_paths):
                await self._delegate(scope, receive, send, rid, started)
                return
            template, reply = "unmatched", json_reply(404, {"error": f"no route {method} {path}", "docs": "/docs"})
        else:
            route, params = found
            template = route.template
            handler = route.methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                allowed = sorted({*route.methods, *(("HEAD",) if "GET" in route.methods else ())})
                reply = json_reply(
                    405, {"error": f"method {method} is not allowed on {path}", "allowed": allowed},
                    {"allow": ", ".join(allowed)},
                )
            else:
                try:
                    reply = await self._handle(handler, Call(scope, receive, headers, rid, params), method, path)
                except ClientGone:
                    self.metrics.request(template, 499, time.perf_counter() - started)
                    return
        try:
            await send_reply(send, reply, rid, head=method == "HEAD")
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.request(template, reply.status, elapsed)
            if self.access_log:
                log.info("%s %s %d %.2fms request_id=%s", method, path, reply.status, elapsed * 1000, rid)
            if self._release_due:
                self._release_due = False
                release_soon()

    async def _handle(self, handler: Handler, call: Call, method: str, path: str) -> Reply:
        try:
            return await handler(call)
        except ClientGone:
            raise
        except Exception as exc:
            return self._failure(exc, call.request_id, method, path)

    def _failure(self, exc: Exception, rid: str, method: str, path: str) -> Reply:
        """The reply for a request whose handler raised: 4xx for the caller's mistakes, 503 while loading, 500."""
        if isinstance(exc, RequestError):
            extra = {"connection": "close"} if exc.status in (408, 413) else None
            return json_reply(exc.status, exc.to_json(), extra)
        if isinstance(exc, NotReady):
            return json_reply(503, {"error": "the model is not ready yet", "request_id": rid},
                              {"retry-after": RETRY_AFTER_S})
        if isinstance(exc, ModelError):
            log.error("request %s: %s %s: model error: %s", rid, method, path, exc.message)
            return json_reply(500, {**exc.to_json(), "request_id": rid})
        log.error("request %s: %s %s failed", rid, method, path, exc_info=exc)
        return json_reply(500, {"error": "internal error", "request_id": rid})

    def quick_reply(self, method: str, path: str, headers: list[tuple[bytes, bytes]],
                    body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """Answer a model call at once, without the ASGI exchange; None: serve it through `__call__` as usual.

        For an HTTP server that can use it (`mlfn.runtime.http11`): a POST to the loaded model's predict, infer
        or invocations path, with a plain body under the limit, when the call would run inline on the event
        loop anyway (see `_run`: calls are quick, nothing batches) and no access log is kept. The status,
        headers and body are what `__call__` would send; metrics count it the same way.
        """
        quick = self._quick.get(path)
        if quick is None or method != "POST" or self.access_log or self._batcher is not None:
            return None
        if self._executor is not None and (len(body) > INLINE_MAX_BODY or self._typical_s >= INLINE_BELOW_S):
            return None
        started = time.perf_counter()
        named = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers}
        if "content-encoding" in named or len(body) > self._limit:
            return None  # decompression and the 413 answer stay on the general path
        rid = request_id_of(_NO_SCOPE, named)
        template, call = quick
        try:
            reply = self._timed(call, body, named)
        except Exception as exc:
            reply = self._failure(exc, rid, method, path)
        self.metrics.request(template, reply.status, time.perf_counter() - started)
        if self._release_due:
            self._release_due = False
            release_soon()
        return reply.status, reply_headers(reply, rid), reply.body

    async def _delegate(self, scope: Scope, receive: Receive, send: Send, rid: str, started: float) -> None:
        """Hand a request the core does not route (docs, routes users added) to the fallback app."""
        assert self.fallback is not None
        status = 500
        sent = False
        rid_header = (b"x-request-id", rid.encode("latin-1"))

        async def tagged_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status, sent = message["status"], True
                message = {**message, "headers": [*message.get("headers", ()), rid_header]}
            await send(message)

        scope["mlfn.request_id"] = rid
        try:
            await self.fallback(scope, receive, tagged_send)
        except Exception:
            log.exception("request %s: %s %s failed", rid, scope["method"], scope["path"])
            if not sent:
                status = 500
                await send_reply(send, json_reply(500, {"error": "internal error", "request_id": rid}), rid)
        finally:
            self.metrics.request("other", status, time.perf_counter() - started)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan (and websockets) go to the fallback; without one, lifespan is acknowledged here."""
        if self.fallback is not None:
            await self.fallback(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    # ------------------------------------------------------------------ handlers

    async def _index(self, call: Call) -> Reply:
        service = self._service
        return json_reply(200, {
            "name": service.spec.name if service else None,
            "ready": bool(service and service.ready()),
            "server": "mlfn",
            "version": __version__,
            "protocols": {  # method and path (the OpenAPI document at /openapi.json has the rest)
                "kserve_v1": f"POST /v1/models/{service.spec.name}:predict" if service else None,
                "oip_v2": f"POST /v2/models/{service.spec.name}/infer" if service else None,
                "sagemaker": "POST /invocations",
            },
            "docs": "/docs",
        })

    async def _ping(self, call: Call) -> Reply:
        service = self._service
        if service is not None and service.ready():
            return Reply(200, b"", "text/plain; charset=utf-8", {})
        return json_reply(503, {"error": "the model is not ready yet"}, {"retry-after": RETRY_AFTER_S})

    async def _live(self, call: Call) -> Reply:
        return json_reply(200, {"live": True})

    async def _ready(self, call: Call) -> Reply:
        service = self._service
        ready = service is not None and service.ready()
        return json_reply(200 if ready else 503, {"ready": ready})

    async def _metrics(self, call: Call) -> Reply:
        exposed = self.metrics.exposition()
        if exposed is None:
            return json_reply(404, {
                "error": "no Prometheus metrics here: on Lambda metrics go to CloudWatch as Embedded Metric Format",
            })
        body, content_type = exposed
        return Reply(200, body, content_type, {})

    async def _invocations(self, call: Call) -> Reply:
        service = self._ready_service()
        body = await read_body(call.headers, call.receive, self._limit)
        return await self._run(service.invocations, body, call.headers)

    async def _v1_list(self, call: Call) -> Reply:
        return json_reply(200, {"models": [self._ready_service().spec.name]})

    async def _v1_model(self, call: Call) -> Reply:
        return json_reply(200, self._ready_service().v1_model(call.params["name"]))

    async def _v1_predict(self, call: Call) -> Reply:
        service = self._ready_service()
        body = await read_body(call.headers, call.receive, self._limit)
        return await self._run(functools.partial(service.v1_predict, call.params["name"]), body, call.headers)

    async def _v2_server(self, call: Call) -> Reply:
        return json_reply(200, self._ready_service().v2_server_metadata())

    def _check_version(self, params: Mapping[str, str]) -> None:
        version = params.get("version")
        if version is not None and self._versions is not None and version not in self._versions:
            raise RequestError(
                f"model {params['name']!r} has no version {version!r}", 404, available=list(self._versions)
            )

    async def _v2_model(self, call: Call) -> Reply:
        service = self._ready_service()
        metadata = service.v2_model_metadata(call.params["name"])
        self._check_version(call.params)
        return json_reply(200, metadata)

    async def _v2_model_ready(self, call: Call) -> Reply:
        service = self._ready_service()
        service.v2_model_metadata(call.params["name"])  # 404 for an unknown name
        self._check_version(call.params)
        ready = service.ready()
        return json_reply(200 if ready else 503, {"name": call.params["name"], "ready": ready})

    async def _v2_model_config(self, call: Call) -> Reply:
        """Triton's model configuration extension, as far as an ONNX signature tells it (perf_analyzer reads it)."""
        service = self._ready_service()
        metadata = service.v2_model_metadata(call.params["name"])
        self._check_version(call.params)

        def tensors(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"name": t["name"], "dims": t["shape"],
                     "data_type": "TYPE_STRING" if t["datatype"] == "BYTES" else f"TYPE_{t['datatype']}"}
                    for t in entries]

        return json_reply(200, {
            "name": metadata["name"], "platform": metadata.get("platform", "onnxruntime_onnx"),
            "backend": "onnxruntime", "max_batch_size": 0,
            "input": tensors(metadata.get("inputs", [])), "output": tensors(metadata.get("outputs", [])),
        })

    async def _v2_index(self, call: Call) -> Reply:
        service = self._ready_service()
        entry: dict[str, object] = {"name": service.spec.name, "state": "READY" if service.ready() else "UNAVAILABLE"}
        if self._versions:
            entry["version"] = self._versions[0]
        return json_reply(200, [entry])

    async def _v2_infer(self, call: Call) -> Reply:
        service = self._ready_service()
        self._check_version(call.params)
        body = await read_body(call.headers, call.receive, self._limit)
        return await self._run(functools.partial(service.v2_infer, call.params["name"]), body, call.headers)


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


def _model_pool(workers: int) -> Executor:
    """The threads model calls run on (imported here: the Lambda handler runs inline and never needs them)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlfn-model")


def _pool_size() -> int:
    from .cpu_share import cpu_share

    return cpu_share().threads
