"""The serving core: a plain ASGI app that routes every protocol straight to `InferenceService`.

A request's way through the core, one concept a module (docs/architecture.md draws it):
- `routing`: the one route table (`ROUTES`) and the `Router` that matches a path to its handler;
- `request_ids`: the request id (the caller's `x-request-id`, else Lambda's, else a new uuid4);
- `handlers`: one handler per operation, per protocol; inference handlers read the body with `request_body`
  (413 over `server.max_body_bytes`, gzip/deflate) and hand the service call to `scheduling`, which runs it
  inline, on the thread pool or in a batch;
- `replies`: a `Reply` as response headers and ASGI messages, and what a raised exception is answered with.

Each request pays for one dictionary lookup (or a split of the path), one read of the body and two `send`
calls; no middleware stack, no request objects, no validation models. FastAPI is kept for what it is good
at, the OpenAPI docs: `mlfn.runtime.app` puts this core in front of a FastAPI app, and containers and the
Lambda handler load FastAPI only when someone asks for the docs (`mlfn.runtime.docs`). Anything the core
does not route goes to the `fallback` ASGI app when one is given.

`quick_reply` is the same request answered without the ASGI exchange, for mlfn's HTTP server (`http11`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .asgi_types import ASGIApp, Message, Receive, Scope, Send
from .handlers import Handlers, Request
from .logs import logger
from .metrics import MetricsProvider, NoopMetrics
from .replies import failure_reply, json_reply, reply_headers, send_reply
from .request_body import BodyDeadline, ClientGone
from .request_ids import NO_SCOPE, new_request_id, request_id_of
from .routing import ROUTES, Handler, Router
from .scheduling import CONCURRENT_HOLD_S, Scheduler
from .service import InferenceService, Reply

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future

__all__ = [  # also here for the code that imported them from this module before it was split
    "CONCURRENT_HOLD_S", "ASGIApp", "BodyDeadline", "Receive", "Scope", "Send", "ServingCore", "load_service",
    "model_info", "new_request_id",
]

log = logger("mlfn.runtime")

DirectCall = Callable[[bytes, Mapping[str, str]], Reply]  # a model call `quick_reply` makes: (body, headers)


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


def headers_of(scope: Scope) -> dict[str, str]:
    """Request headers by name (ASGI servers and Mangum give names lower-cased; a repeated header keeps its last)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


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
        self.scheduler = Scheduler(executor, inline=inline)
        self.service: InferenceService | None = None  # None while the model loads
        self.limit = 0  # server.max_body_bytes, once the model is loaded
        self.versions: tuple[str, ...] | None = None
        self._direct: dict[str, tuple[str, DirectCall]] = {}  # model calls `quick_reply` answers, by path
        handlers: Mapping[str, Handler] = Handlers(self).by_name()
        self.router = Router(ROUTES, handlers)
        if not isinstance(service, InferenceService):  # a concurrent.futures.Future of one
            service.add_done_callback(self._on_loaded)
        else:
            self._adopt(service)

    # ------------------------------------------------------------------ the model

    def _on_loaded(self, future: Future[InferenceService]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._adopt(future.result())

    def _adopt(self, service: InferenceService) -> None:
        batcher = service.batcher  # see batching.install
        if service.observer is None and batcher is None:  # a service built elsewhere still reports its runs
            service.observer = self.metrics.inference
            self.metrics.model_loaded(model_info(service), None)
        if batcher is not None:
            self.scheduler.attach_batcher(batcher)
        self.limit = service.spec.settings.server.max_body_bytes
        name = service.spec.name
        self._direct = {
            f"/v1/models/{name}:predict": ("/v1/models/{name}:predict", functools.partial(service.v1_predict, name)),
            f"/v2/models/{name}/infer": ("/v2/models/{name}/infer", functools.partial(service.v2_infer, name)),
            "/invocations": ("/invocations", service.invocations),
        }
        versions = service.v2_model_metadata(service.spec.name).get("versions")
        self.versions = tuple(str(v) for v in versions) if versions else None
        self.service = service

    def body_limit(self) -> int:
        """The largest request body read (`server.max_body_bytes`; its default while the model loads)."""
        if self.limit:
            return self.limit
        from .settings import ServerSettings

        return ServerSettings().max_body_bytes

    def shutdown(self) -> None:
        """Stop the thread pool this core made (the server calls this after the last request)."""
        self.scheduler.shutdown()

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
        found = self.router.match(path)
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
                    reply = await handler(Request(scope, receive, headers, rid, params))
                except ClientGone:
                    self.metrics.request(template, 499, time.perf_counter() - started)
                    return
                except Exception as exc:
                    reply = failure_reply(exc, rid, method, path)
        try:
            await send_reply(send, reply, rid, head=method == "HEAD")
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.request(template, reply.status, elapsed)
            if self.access_log:
                log.info("%s %s %d %.2fms request_id=%s", method, path, reply.status, elapsed * 1000, rid)
            self.scheduler.release_if_due()

    def quick_reply(self, method: str, path: str, headers: list[tuple[bytes, bytes]],
                    body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """Answer a model call at once, without the ASGI exchange; None: serve it through `__call__` as usual.

        For an HTTP server that can use it (`mlfn.runtime.http11`): a POST to the loaded model's predict, infer
        or invocations path, with a plain body under the limit, when the call would run inline on the event
        loop anyway (`Scheduler.runs_inline`: calls are quick, nothing batches) and no access log is kept. The
        status, headers and body are what `__call__` would send; metrics count it the same way.
        """
        direct = self._direct.get(path)
        if direct is None or method != "POST" or self.access_log or not self.scheduler.runs_inline(len(body)):
            return None
        started = time.perf_counter()
        named = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers}
        if "content-encoding" in named or len(body) > self.limit:
            return None  # decompression and the 413 answer stay on the general path
        rid = request_id_of(NO_SCOPE, named)
        template, call = direct
        try:
            reply = self.scheduler.measured(call, body, named)
        except Exception as exc:
            reply = failure_reply(exc, rid, method, path)
        self.metrics.request(template, reply.status, time.perf_counter() - started)
        self.scheduler.release_if_due()
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
        finally:  # a path the fallback has no route for either is "unmatched", as the core's own 404 is
            template = "other" if "endpoint" in scope or status != 404 else "unmatched"
            self.metrics.request(template, status, time.perf_counter() - started)

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
