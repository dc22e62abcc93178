"""The AWS Lambda entry point: `mlfn.runtime.lambda_handler.handler`.

The model is loaded once, when Lambda imports this module (the init phase), from `MLFN_MODEL_DIR`
(default `/opt/mlfn/model`, where images put it). Mangum runs the ASGI lifespan on every invoke, so
nothing is loaded in a lifespan handler and Mangum runs with `lifespan="off"`.

Events:
- Function URL and API Gateway HTTP API (payload format 2.0), API Gateway REST and HTTP API payload 1.0:
  Mangum turns them into ASGI requests for the same `ServingCore` every container runs. Base64 request
  bodies are decoded; binary responses (anything but text and JSON, e.g. OIP v2 binary tensors as
  `application/octet-stream`) go back base64-encoded with `isBase64Encoded: true`.
- A direct invocation (`aws lambda invoke` with a JSON payload, Step Functions): the event is treated as
  a JSON body for `/invocations` and the reply's JSON is returned as is (errors as `{"error": ..., "status"}`).

Metrics go to CloudWatch as Embedded Metric Format, one line per invocation, with `ColdStart` and
`InitDuration` on a sandbox's first. `GET /metrics` answers 404 JSON here: a sandbox's Prometheus counters
would be one of many and could not be scraped. The docs pages (`/docs`, `/openapi.json`) load FastAPI on
their first request only, which keeps FastAPI's import out of the cold start.

With SnapStart the init above runs once per published version; `mlfn.runtime.snapstart` registers the
before-snapshot and after-restore hooks that awslambdaric runs.

This module imports neither boto3, the control plane, FastAPI nor prometheus-client.
"""

from __future__ import annotations

import time

_INIT_STARTED = time.perf_counter()

from .lambda_adapter import LambdaHandler, build  # noqa: E402 - the init timer starts before the imports
from .snapstart import register as register_snapstart_hooks  # noqa: E402

__all__ = ["LambdaHandler", "build", "handler"]

handler: LambdaHandler = build(init_started=_INIT_STARTED)
register_snapstart_hooks(handler)  # SnapStart: the session above is in the snapshot; restores re-seed (snapstart.py)
