"""What each use of a dependency's private API buys, measured in process (the serving core keeps one only if
it buys something measurable; docs/architecture.md lists them with their guard tests).

    .venv/bin/python -m bench.private_apis [--model functions/iris] [--seconds 2]

- onnxruntime `InferenceSession._sess.run` (runtime_layer/ort_binding.py) against the public `session.run`, on
  the model's one-row input, both given the output names;
- a Mangum `HTTPGateway` subclass caching its ASGI scope (removed from the Lambda adapter: see the figure)
  against Mangum's own handler, on an API Gateway HTTP API payload 1.0 event (the events Mangum still serves).
Medians of alternating slices, microseconds per call.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _per_call_us(fn: Callable[[], object], seconds: float) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and len(samples) < 200_000:
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def compare(a: Callable[[], object], b: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(median µs of a, of b) over alternating slices."""
    sa: list[float] = []
    sb: list[float] = []
    for _ in range(10):
        sa += _per_call_us(a, seconds / 20)
        sb += _per_call_us(b, seconds / 20)
    return statistics.median(sa), statistics.median(sb)


def ort_binding(model_dir: Path, seconds: float) -> tuple[float, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    names = [o.name for o in session.get_outputs()]
    feeds = {first.name: np.asarray(json.loads((model_dir / "example.json").read_text())["instances"], np.float32)}
    binding = session._sess  # the private API under measurement
    return compare(lambda: session.run(names, feeds), lambda: binding.run(names, feeds, None), seconds)


def mangum_scope_cache(model_dir: Path, seconds: float) -> tuple[float, float]:
    from mangum import Mangum
    from mangum.handlers import HTTPGateway

    from mlfn.runtime.lambda_adapter import build
    from mlfn.runtime.lambda_contract import TEXT_MIME_TYPES

    class CachedScope(HTTPGateway):
        @functools.cached_property
        def scope(self) -> Any:  # type: ignore[override]
            return super().scope

    handler = build(model_dir)
    body = (model_dir / "example.json").read_text()
    event = {"version": "1.0", "resource": "/{proxy+}", "path": f"/v1/models/{handler.service.name}:predict",
             "httpMethod": "POST", "headers": {"content-type": "application/json", "host": "x.execute-api"},
             "multiValueHeaders": {"content-type": ["application/json"], "host": ["x.execute-api"]},
             "queryStringParameters": None, "multiValueQueryStringParameters": None,
             "requestContext": {"identity": {"sourceIp": "127.0.0.1"}, "stage": "$default"},
             "body": body, "isBase64Encoded": False}
    plain = Mangum(handler.core, lifespan="off", text_mime_types=list(TEXT_MIME_TYPES))  # type: ignore[arg-type]
    cached = Mangum(handler.core, lifespan="off", text_mime_types=list(TEXT_MIME_TYPES),  # type: ignore[arg-type]
                    custom_handlers=[CachedScope])
    with contextlib.redirect_stdout(io.StringIO()):
        for app in (plain, cached):
            assert app(event, None)["statusCode"] == 200
        return compare(lambda: plain(event, None), lambda: cached(event, None), seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "functions" / "iris")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    public, private = ort_binding(args.model, args.seconds)
    print(f"onnxruntime run: session.run {public:.1f} µs, _sess.run {private:.1f} µs "
          f"({public - private:+.1f} µs a call)")
    plain, cached = mangum_scope_cache(args.model, args.seconds)
    print(f"Mangum HTTP API 1.0 request: HTTPGateway {plain:.1f} µs, with a cached scope {cached:.1f} µs "
          f"({plain - cached:+.1f} µs a request)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
