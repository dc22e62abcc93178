"""sagemaker-runtime InvokeEndpoint on the data plane (moto's answers with a canned body): the endpoint's container
gets the request as SageMaker passes it (the body, and only the headers the API defines), and the answer comes back
with its status, content type and custom attributes.

`install()` points moto's sagemaker-runtime routes at `MlfnSageMakerRuntimeResponse`; the endpoint must exist in
the control plane (else InvokeEndpoint's 400 ValidationError "Endpoint NAME of account ACCOUNT not found.").
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote

from moto.core.common_types import TYPE_RESPONSE
from moto.core.exceptions import JsonRESTError
from moto.sagemaker.models import sagemaker_backends
from moto.sagemakerruntime import urls as runtime_urls
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from .emulated_stores import STORES
from .lambda_api import ServiceException, call_data_plane

# what InvokeEndpoint passes on to the container ("SageMaker strips all POST headers except those supported by
# the API"), and what it hands back
REQUEST_HEADERS = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes", "x-amzn-sagemaker-target-model",
                   "x-amzn-sagemaker-target-variant", "x-amzn-sagemaker-target-container-hostname",
                   "x-amzn-sagemaker-inference-id", "x-amzn-sagemaker-inference-component")
RESPONSE_HEADERS = ("content-type", "x-amzn-invoked-production-variant", "x-amzn-sagemaker-custom-attributes",
                    "x-amzn-errortype")


class ValidationError(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("ValidationError", message)


class ServiceUnavailable(JsonRESTError):
    code = 503

    def __init__(self, message: str) -> None:
        super().__init__("ServiceUnavailable", message)


class MlfnSageMakerRuntimeResponse(SageMakerRuntimeResponse):
    def invoke_endpoint(self) -> TYPE_RESPONSE:  # type: ignore[override]
        name = unquote(self.path.split("?")[0].split("/")[2])
        if name not in sagemaker_backends[self.current_account][self.region].endpoints:
            raise ValidationError(f"Endpoint {name} of account {self.current_account} not found.")
        body = self.body if isinstance(self.body, bytes) else (self.body or "").encode()
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() in REQUEST_HEADERS}
        try:
            answer: dict[str, Any] = call_data_plane(STORES.state_dir, "/invoke-endpoint", {
                "endpoint": name, "headers": headers, "body": base64.b64encode(body).decode()},
                what=f"endpoint {name}", timeout=240)  # a cold start (3 min to /ping) and the 60 s request
        except ServiceException as exc:
            raise ServiceUnavailable(exc.message) from None
        out = {k: v for k, v in answer["headers"] if k.lower() in RESPONSE_HEADERS}
        return int(answer["status"]), out, base64.b64decode(answer["body"])


def install() -> None:
    """Serve sagemaker-runtime's routes with `MlfnSageMakerRuntimeResponse`. Idempotent."""
    for pattern in list(runtime_urls.url_paths):
        runtime_urls.url_paths[pattern] = MlfnSageMakerRuntimeResponse.dispatch
