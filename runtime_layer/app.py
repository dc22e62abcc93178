"""`create_app`: the FastAPI app serving one model directory over every protocol mlfn speaks.

The requests themselves are served by `mlfn.runtime.asgi.ServingCore`, which the returned FastAPI app
calls first: KServe v1, Open Inference Protocol v2, SageMaker, `/ping`, `/metrics`. FastAPI gives the
OpenAPI document (`/openapi.json`, `/docs`, `/redoc`) describing those routes, with request examples built
from the model's own signature, and serves any route a user adds to the app. Errors are JSON everywhere:
`{"error": ...}` with a 404, 405, 413, 4xx from the codecs, or 500 with the request id.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .asgi import Receive, Scope, Send, ServingCore, load_service
from .errors import RequestError
from .metrics import MetricsProvider
from .service import InferenceService
from .spec import TensorSpec

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
    for operation_id, path, method, summary, tag, extra in _operations(core):
        app.add_api_route(path, _stub(path), methods=[method], summary=summary, tags=[tag],
                          operation_id=operation_id, openapi_extra=extra, response_model=None)
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
    message = {404: f"no route {request.method} {request.url.path}",
               405: f"method {request.method} is not allowed on {request.url.path}"}.get(exc.status_code, exc.detail)
    return JSONResponse({"error": message}, exc.status_code, headers=dict(exc.headers or {}))


async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
    return JSONResponse(exc.to_json(), exc.status)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "internal error", "request_id": _request_id(request)}, 500)


# ---------------------------------------------------------------------------------------- OpenAPI


def _openapi(app: FastAPI, core: ServingCore) -> dict[str, Any]:
    """FastAPI's document with the model's name and examples; cached once the model is loaded."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    service = core.service
    title = f"mlfn: {service.spec.name}" if service else app.title
    model = service.spec.settings.description if service else ""
    description = f"{model}\n\n{app.description}" if model else app.description
    schema = get_openapi(title=title, version=app.version, description=description, routes=app.routes)
    if service is not None:
        app.openapi_schema = schema
    return schema


def _zero(t: TensorSpec) -> Any:
    return {"BYTES": "text", "BOOL": False}.get(t.dtype.v2 if t.dtype else "", 0)


def _example_shape(t: TensorSpec) -> list[int]:
    return [d if isinstance(d, int) else 1 for d in (t.shape if t.shape is not None else (1,))]


def _example_value(t: TensorSpec) -> Any:
    """A nested list of zeros in the input's shape (dynamic dimensions as 1)."""
    value = _zero(t)
    for d in reversed(_example_shape(t)):
        value = [value] * d
    return value


def _examples(core: ServingCore) -> tuple[Any, Any]:
    """A v1 and a v2 request body for the model's inputs (zeros; dynamic dimensions as 1)."""
    service = core.service
    if service is None:
        return {"instances": [[0.0]]}, {"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP32",
                                                  "data": [0.0]}]}
    inputs = service.spec.inputs
    if len(inputs) == 1:
        v1: Any = {"instances": _example_value(inputs[0])}
    else:
        v1 = {"inputs": {t.name: _example_value(t) for t in inputs}}
    v2_inputs = []
    for t in inputs:
        shape = _example_shape(t)
        v2_inputs.append({"name": t.name, "shape": shape, "datatype": t.dtype.v2 if t.dtype else "FP32",
                          "data": [_zero(t)] * math.prod(shape)})
    return v1, {"inputs": v2_inputs}


V2_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string", "enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
                                                "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]},
        "parameters": {"type": "object", "description": "`binary_data_size` when the data follows the JSON"},
        "data": {"type": "array", "description": "row-major values, flat or nested"},
    },
}
V2_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object", "description": "`binary_data_output: true` asks for binary outputs"},
        "inputs": {"type": "array", "items": V2_TENSOR},
        "outputs": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "parameters": {"type": "object"}}}},
    },
}
V1_REQUEST = {
    "type": "object",
    "description": "`instances` (rows) or `inputs` (columns, or one object per input name)",
    "properties": {"instances": {"type": "array"}, "inputs": {}},
}
BINARY_V2 = {
    "schema": {"type": "string", "format": "binary"},
    "description": "Binary tensor extension: the JSON header (its length in the Inference-Header-Content-Length "
                   "header) followed by the raw tensor bytes",
}
ERROR = {"description": "Bad input, unknown model or route, body too large: `{\"error\": ...}` naming what was "
                        "wrong and what was expected",
         "content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}}


def _body(content: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": description, "content": dict(content)},
            "responses": {"400": ERROR, "413": ERROR, "500": ERROR}}


def _operations(core: ServingCore) -> list[tuple[str, str, str, str, str, dict[str, Any] | None]]:
    """(operation id, path, method, summary, tag, OpenAPI extra) of every route the core serves."""
    v1_example, v2_example = _examples(core)
    v1 = _body({"application/json": {"schema": V1_REQUEST, "example": v1_example}}, "KServe v1 request")
    v2 = _body({"application/json": {"schema": V2_REQUEST, "example": v2_example},
                "application/octet-stream": BINARY_V2}, "Open Inference Protocol v2 request")
    invocations = _body({
        "application/json": {"schema": {"oneOf": [V1_REQUEST, V2_REQUEST]}, "example": v1_example},
        "text/csv": {"schema": {"type": "string"}, "example": "0,0,0,0\n"},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                     "description": "raw bytes for a model directory whose hooks read them"},
    }, "SageMaker invocation: a v1 or v2 JSON body, CSV rows for tabular models, or bytes a hook decodes")
    ver = "/v2/models/{name}/versions/{version}"
    sm, kv1, oip, ops = "SageMaker", "KServe v1", "Open Inference Protocol v2", "Operations"
    return [
        ("index", "/", "GET", "What this server serves: model name, readiness, protocol routes", ops, None),
        ("ping", "/ping", "GET", "Health check: 200 with an empty body once the model is loaded", sm, None),
        ("invocations", "/invocations", "POST", "SageMaker inference", sm, invocations),
        ("invocations_root", "/", "POST", "Inference at the root (alias of /invocations)", sm, invocations),
        ("v1_models", "/v1/models", "GET", "Models served", kv1, None),
        ("v1_model", "/v1/models/{name}", "GET", "Model status", kv1, None),
        ("v1_predict", "/v1/models/{name}:predict", "POST", "Predict", kv1, v1),
        ("v2_server_metadata", "/v2", "GET", "Server metadata", oip, None),
        ("v2_live", "/v2/health/live", "GET", "Liveness", oip, None),
        ("v2_ready", "/v2/health/ready", "GET", "Readiness", oip, None),
        ("v2_model_metadata", "/v2/models/{name}", "GET", "Model metadata", oip, None),
        ("v2_model_ready", "/v2/models/{name}/ready", "GET", "Model readiness", oip, None),
        ("v2_infer", "/v2/models/{name}/infer", "POST", "Inference", oip, v2),
        ("v2_model_config", "/v2/models/{name}/config", "GET", "Model configuration (Triton extension)", oip, None),
        ("v2_version_metadata", ver, "GET", "Model metadata of a version", oip, None),
        ("v2_version_ready", f"{ver}/ready", "GET", "Model readiness of a version", oip, None),
        ("v2_version_infer", f"{ver}/infer", "POST", "Inference on a version", oip, v2),
        ("v2_version_config", f"{ver}/config", "GET", "Model configuration of a version", oip, None),
        ("v2_repository_index", "/v2/repository/index", "POST", "Models in the repository (Triton extension)", oip,
         None),
        ("metrics", "/metrics", "GET", "Prometheus metrics (404 on Lambda, which publishes CloudWatch EMF)", ops, None),
    ]
