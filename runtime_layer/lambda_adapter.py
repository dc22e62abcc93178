"""What the Lambda entry point is made of: `build(model_dir)` loads a model and returns a `LambdaHandler`.

`mlfn.runtime.lambda_handler` calls `build()` once at import; tests and tools import this module instead
to build handlers for any model directory without loading one at import.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from pathlib import Path
from typing import Any

import orjson

from . import multi_record
from .asgi import ServingCore, load_service
from .asgi_types import ASGIApp
from .docs import DOCS_PATHS, LazyDocs
from .lambda_contract import RESPONSE_LIMIT, TEXT_MIME_TYPES
from .lambda_http import event_of, is_payload_v2, serve_v2
from .logs import logger
from .metrics.emf import EmfMetrics
from .request_ids import new_request_id, request_id_of
from .service import FEWER_ROWS, InferenceService

log = logger("mlfn.runtime.lambda")

MODEL_DIR_ENV = "MLFN_MODEL_DIR"
DEFAULT_MODEL_DIR = "/opt/mlfn/model"


def mangum_for(app: ASGIApp) -> Any:
    """Mangum around the core, for the events `lambda_http` does not serve itself (imported on first use)."""
    from mangum import Mangum

    asgi: Any = app
    return Mangum(asgi, lifespan="off", text_mime_types=list(TEXT_MIME_TYPES))


def is_http_event(event: Any) -> bool:
    """Function URL, API Gateway (REST, HTTP API) and ALB events all carry a request context."""
    return isinstance(event, dict) and "requestContext" in event


def _error_response(status: int, payload: dict[str, Any], request_id: str) -> dict[str, Any]:
    """A proxy response for failures outside the app (valid for REST, HTTP API and Function URLs)."""
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "x-request-id": request_id},
        "body": orjson.dumps(payload).decode(),
        "isBase64Encoded": False,
    }


class LambdaHandler:
    """Calls the core through Mangum for HTTP events, or directly for plain JSON payloads, and flushes EMF."""

    def __init__(self, service: InferenceService, *, metrics: EmfMetrics, init_seconds: float = 0.0) -> None:
        self.service = service
        self.metrics = metrics
        self.init_seconds = init_seconds
        self.core = ServingCore(service, metrics=metrics, inline=True, fallback_paths=DOCS_PATHS)
        self.core.fallback = LazyDocs(self.core)
        self._mangum: Any = None
        self._cold = True

    def adapter(self, event: Any, context: Any) -> dict[str, Any]:
        """The ASGI core on one HTTP event: payload 2.0 directly (`lambda_http`), others through Mangum."""
        if is_payload_v2(event) and event["requestContext"]["http"].get("path") not in DOCS_PATHS:
            return serve_v2(self.core, event, context, TEXT_MIME_TYPES)
        if self._mangum is None:
            self._mangum = mangum_for(self.core)
        response: dict[str, Any] = self._mangum(event, context)
        return response

    def __call__(self, event: Any, context: Any) -> Any:
        if self._cold:
            self._cold = False
            self.metrics.cold_start(self.init_seconds)
        lambda_id = str(getattr(context, "aws_request_id", "") or "")
        try:
            if is_http_event(event):
                response = self._http(event, context, lambda_id)
                request_id = (response.get("headers") or {}).get("x-request-id", lambda_id)
            else:
                response = self._direct(event, context, lambda_id)
                request_id = lambda_id
            self.metrics.annotate(RequestId=request_id, LambdaRequestId=lambda_id,
                                  FunctionVersion=getattr(context, "function_version", None))
            return response
        finally:
            self.metrics.flush()

    def _http(self, event: dict[str, Any], context: Any, lambda_id: str) -> dict[str, Any]:
        if event.get("isBase64Encoded") and event.get("body"):
            try:
                base64.b64decode(event["body"], validate=True)
            except (binascii.Error, ValueError):
                self.metrics.request("unmatched", 400, 0.0)
                headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
                request_id = request_id_of({"aws.context": context}, headers)
                return _error_response(400, {"error": "the event's body is marked base64 but is not valid base64",
                                             "request_id": request_id}, request_id)
        response: dict[str, Any] = self.adapter(event, context)
        body = response.get("body") or ""
        if len(body) > RESPONSE_LIMIT - 65536 and len(orjson.dumps(response)) > RESPONSE_LIMIT:
            request_id = (response.get("headers") or {}).get("x-request-id", lambda_id)
            log.error("request %s: response of %d bytes exceeds Lambda's limit", request_id, len(body))
            return _error_response(413, {
                "error": f"the response would exceed Lambda's {RESPONSE_LIMIT}-byte payload limit: {FEWER_ROWS}",
                "limit": RESPONSE_LIMIT, "request_id": request_id,
            }, request_id)
        return response

    def _direct(self, event: Any, context: Any, lambda_id: str) -> Any:
        """A plain JSON payload: served like `POST /invocations` with `Content-Type: application/json`; a Distributed
        Map batch (`{"Items": [...]}`) as JSON Lines, answered with a list of one result per item."""
        items = multi_record.batch_items(event)
        request_type = "application/json" if items is None else multi_record.CONTENT_TYPE
        payload = orjson.dumps(event) if items is None else items
        wrapped = event_of("POST", "/invocations", payload, request_id=lambda_id,
                           headers={"content-type": request_type, "x-request-id": lambda_id or new_request_id()})
        response = self.adapter(wrapped, context)
        status = response["statusCode"]
        content_type = (response.get("headers") or {}).get("content-type", "")
        body = response.get("body", "")
        if content_type.startswith(multi_record.CONTENT_TYPE) and not response.get("isBase64Encoded"):
            return [orjson.loads(line) for line in body.splitlines()]
        if content_type.startswith("application/json") and not response.get("isBase64Encoded"):
            result = orjson.loads(body)
            if status >= 400 and isinstance(result, dict):
                result.setdefault("status", status)
            return result
        if not response.get("isBase64Encoded"):
            body = base64.b64encode(body.encode()).decode()
        return {"status": status, "contentType": content_type, "body": body}


def build(model_dir: str | Path | None = None, *, init_started: float | None = None) -> LambdaHandler:
    """Load the model and wrap it for Lambda (the module does this once, at import)."""
    directory = model_dir or os.environ.get(MODEL_DIR_ENV) or DEFAULT_MODEL_DIR
    metrics = EmfMetrics()
    started = time.perf_counter()
    service = load_service(directory, metrics)
    init_seconds = time.perf_counter() - (init_started if init_started is not None else started)
    return LambdaHandler(service, metrics=metrics, init_seconds=init_seconds)
