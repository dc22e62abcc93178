"""The handler of every operation in the route table (`mlfn.runtime.routing.ROUTES`), one section per protocol.

A handler takes a `Request` and returns a `Reply`, or raises (`replies.failure_reply` turns what it raises
into the answer). Inference handlers (invocations, v1_predict, v2_infer) read the body
(`request_body.read_body`) and hand the blocking service call to the scheduler (`scheduling.Scheduler.run`),
which runs `InferenceService` and so `session.run`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import __version__
from .asgi_types import Receive, Scope
from .errors import RequestError
from .replies import NotReady, json_reply, not_ready_reply
from .request_body import read_body
from .service import InferenceService, Reply

if TYPE_CHECKING:
    from .asgi import ServingCore


class Request:
    """One request as the handlers see it: its scope, body source, headers, id and path parameters."""

    __slots__ = ("headers", "params", "receive", "request_id", "scope")

    def __init__(self, scope: Scope, receive: Receive, headers: dict[str, str], request_id: str,
                 params: Mapping[str, str]) -> None:
        self.scope = scope
        self.receive = receive
        self.headers = headers
        self.request_id = request_id
        self.params = params


class Handlers:
    """The handlers of one `ServingCore`, by the names the route table gives them."""

    def __init__(self, core: ServingCore) -> None:
        self.core = core

    def by_name(self) -> dict[str, Any]:
        """Every handler, by its name in the route table."""
        return {name: getattr(self, name) for name in dir(type(self))
                if not name.startswith("_") and name not in ("by_name",)}

    def _ready_service(self) -> InferenceService:
        service = self.core.service
        if service is None:
            raise NotReady()
        return service

    # ------------------------------------------------------------------ operations

    async def index(self, request: Request) -> Reply:
        service = self.core.service
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

    async def metrics(self, request: Request) -> Reply:
        exposed = self.core.metrics.exposition()
        if exposed is None:
            return json_reply(404, {
                "error": "no Prometheus metrics here: on Lambda metrics go to CloudWatch as Embedded Metric Format",
            })
        body, content_type = exposed
        return Reply(200, body, content_type, {})

    # ------------------------------------------------------------------ SageMaker

    async def ping(self, request: Request) -> Reply:
        service = self.core.service
        if service is not None and service.ready():
            return Reply(200, b"", "text/plain; charset=utf-8", {})
        return not_ready_reply()

    async def invocations(self, request: Request) -> Reply:
        service = self._ready_service()
        body = await read_body(request.headers, request.receive, self.core.limit)
        return await self.core.scheduler.run(service.invocations, body, request.headers)

    # ------------------------------------------------------------------ KServe v1

    async def v1_models(self, request: Request) -> Reply:
        return json_reply(200, {"models": [self._ready_service().spec.name]})

    async def v1_model(self, request: Request) -> Reply:
        return json_reply(200, self._ready_service().v1_model(request.params["name"]))

    async def v1_predict(self, request: Request) -> Reply:
        service = self._ready_service()
        body = await read_body(request.headers, request.receive, self.core.limit)
        run = functools.partial(service.v1_predict, request.params["name"])
        return await self.core.scheduler.run(run, body, request.headers)

    # ------------------------------------------------------------------ Open Inference Protocol v2

    async def v2_server_metadata(self, request: Request) -> Reply:
        return json_reply(200, self._ready_service().v2_server_metadata())

    async def v2_live(self, request: Request) -> Reply:
        return json_reply(200, {"live": True})

    async def v2_ready(self, request: Request) -> Reply:
        service = self.core.service
        ready = service is not None and service.ready()
        return json_reply(200 if ready else 503, {"ready": ready})

    def _check_version(self, params: Mapping[str, str]) -> None:
        version = params.get("version")
        versions = self.core.versions
        if version is not None and versions is not None and version not in versions:
            raise RequestError(f"model {params['name']!r} has no version {version!r}", 404, available=list(versions))

    async def v2_model_metadata(self, request: Request) -> Reply:
        service = self._ready_service()
        metadata = service.v2_model_metadata(request.params["name"])
        self._check_version(request.params)
        return json_reply(200, metadata)

    async def v2_model_ready(self, request: Request) -> Reply:
        service = self._ready_service()
        service.v2_model_metadata(request.params["name"])  # 404 for an unknown name
        self._check_version(request.params)
        ready = service.ready()
        return json_reply(200 if ready else 503, {"name": request.params["name"], "ready": ready})

    async def v2_model_config(self, request: Request) -> Reply:
        """Triton's model configuration extension, as far as an ONNX signature tells it (perf_analyzer reads it)."""
        service = self._ready_service()
        metadata = service.v2_model_metadata(request.params["name"])
        self._check_version(request.params)

        def tensors(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"name": t["name"], "dims": t["shape"],
                     "data_type": "TYPE_STRING" if t["datatype"] == "BYTES" else f"TYPE_{t['datatype']}"}
                    for t in entries]

        return json_reply(200, {
            "name": metadata["name"], "platform": metadata.get("platform", "onnxruntime_onnx"),
            "backend": "onnxruntime", "max_batch_size": 0,
            "input": tensors(metadata.get("inputs", [])), "output": tensors(metadata.get("outputs", [])),
        })

    async def v2_repository_index(self, request: Request) -> Reply:
        service = self._ready_service()
        entry: dict[str, object] = {"name": service.spec.name, "state": "READY" if service.ready() else "UNAVAILABLE"}
        if self.core.versions:
            entry["version"] = self.core.versions[0]
        return json_reply(200, [entry])

    async def v2_infer(self, request: Request) -> Reply:
        service = self._ready_service()
        self._check_version(request.params)
        body = await read_body(request.headers, request.receive, self.core.limit)
        run = functools.partial(service.v2_infer, request.params["name"])
        return await self.core.scheduler.run(run, body, request.headers)
