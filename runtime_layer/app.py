"""`create_app`: the FastAPI app serving one model directory over every protocol mlfn speaks.

The requests themselves are served by `mlfn.runtime.asgi.ServingCore`, which the returned FastAPI app
calls first: KServe v1, Open Inference Protocol v2, SageMaker, `/ping`, `/metrics`. FastAPI gives the
OpenAPI document (`/openapi.json`, `/docs`, `/redoc`) describing those routes, with request schemas and
examples built from the model's own signature (`mlfn.runtime.openapi`), and serves any route a user adds.
Errors are JSON everywhere: `{"error": ...}` with a 404, 405, 413, 4xx from the codecs, or 500 with the request id.
"""

from __future__ import annotations

import functools
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .asgi import ServingCore, load_service
from .asgi_types import Receive, Scope, Send
from .errors import RequestError
from .metrics import MetricsProvider
from .openapi import describe
from .routing import ROUTES
from .service import InferenceService

ServiceSource = InferenceService | Future[InferenceService] | str | Path
DESCRIPTION = (
    "One ONNX model served over the KServe v1 protocol, the Open Inference Protocol v2 (JSON and binary tensors) "
    "and the SageMaker container contract. Errors are JSON `{\"error\": ...}` naming what was wrong and what was "
    "expected; every response carries an `x-request-id` header (the caller's, when sent)."
)


class MlfnApp(FastAPI):
    """A FastAPI app whose protocol routes are served by a `ServingCore` before FastAPI's own stack."""

    core: ServingCore

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.core(scope, receive, send)


def create_app(
    service_or_dir: ServiceSource,
    *,
    metrics: MetricsProvider | None = None,
    executor: Executor | None = None,
    inline: bool = False,
    access_log: bool = False,
) -> FastAPI:
    """The app for a model directory, a loaded `InferenceService`, or a Future of one (still loading).

    `metrics` defaults to a fresh `PrometheusMetrics` (scraped at `GET /metrics`). A service built
    elsewhere reports model runs only if it was built with `observer=metrics.inference`.
    """
    if metrics is None:
        from .metrics.prometheus import PrometheusMetrics

        metrics = PrometheusMetrics()
    source = load_service(service_or_dir, metrics) if isinstance(service_or_dir, (str, Path)) else service_or_dir
    app = MlfnApp(title="mlfn model server", version=__version__, description=DESCRIPTION)
    app.core = ServingCore(
        source, metrics=metrics, executor=executor, inline=inline, access_log=access_log,
        fallback=functools.partial(FastAPI.__call__, app),
    )
    document(app, app.core)
    return app


def document(app: FastAPI, core: ServingCore) -> FastAPI:
    """Declare the core's routes on a FastAPI app for its OpenAPI document, and make its errors JSON."""
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestError, _request_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal_error)
    for op in ROUTES:  # the core's own route table: what is documented is what is served
        app.add_api_route(op.path, _stub(op.path), methods=[op.method], summary=op.summary, tags=[op.tag],
                          operation_id=op.operation_id, response_model=None)
    app.openapi = functools.partial(_openapi, app, core)  # type: ignore[method-assign]
    return app


def docs_app(core: ServingCore) -> FastAPI:
    """A FastAPI app holding only the OpenAPI document and docs pages for `core` (the Lambda handler's)."""
    return document(FastAPI(title="mlfn model server", version=__version__, description=DESCRIPTION), core)


# The core answers these paths before FastAPI; the stubs only give FastAPI the path parameters to document.
async def _served_by_core() -> None:  # pragma: no cover
    raise RuntimeError("served by ServingCore")


async def _served_by_core_name(name: str) -> None:  # pragma: no cover
    raise RuntimeError("served by ServingCore")


async def _served_by_core_version(name: str, version: str) -> None:  # pragma: no cover
    raise RuntimeError("served by ServingCore")


def _stub(path: str) -> Any:
    if "{version}" in path:
        return _served_by_core_version
    return _served_by_core_name if "{name}" in path else _served_by_core


def _request_id(request: Request) -> str:
    return str(request.scope.get("mlfn.request_id", ""))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's 404 and 405 answered as the core answers them (tests/runtime_http/test_entrances.py)."""
    if exc.status_code == 404:
        content: dict[str, Any] = {"error": f"no route {request.method} {request.url.path}", "docs": "/docs"}
    elif exc.status_code == 405:
        content = {"error": f"method {request.method} is not allowed on {request.url.path}"}
    else:
        content = {"error": exc.detail}
    return JSONResponse(content, exc.status_code, headers=dict(exc.headers or {}))


async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
    return JSONResponse(exc.to_json(), exc.status)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "internal error", "request_id": _request_id(request)}, 500)


# ---------------------------------------------------------------------------------------- OpenAPI


def _openapi(app: FastAPI, core: ServingCore) -> dict[str, Any]:
    """FastAPI's document of the routes, described from the model (`mlfn.runtime.openapi`); cached once the model
    is loaded."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    service = core.service
    title = f"mlfn: {service.spec.name}" if service else app.title
    model = service.spec.settings.description if service else ""
    description = f"{model}\n\n{app.description}" if model else app.description
    schema = describe(get_openapi(title=title, version=app.version, description=description, routes=app.routes),
                      service)
    if service is not None:
        app.openapi_schema = schema
    return schema
