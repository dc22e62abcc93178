"""Figures measured inside one Python process, pinned to the server core: bare onnxruntime and the Lambda handler.

    taskset -c 1 python -m bench.compare.inprocess MODEL_DIR BODY_FILE OUT_JSON SECONDS

- bare `session.run` (one intra-op thread) on the request's rows: median and p99 ms at batch 1, runs/s at
  batch 1, rows/s at batch 32 (the request's row repeated);
- mlfn's Lambda handler (`mlfn.runtime.lambda_adapter.build`) called with a Function URL event carrying the
  same body, alternating with the bare run in short batches, so its overhead is the difference of medians.

`init_seconds()` (called by the harness) times, in fresh interpreters taking turns, `import onnxruntime` plus
session creation against the import of `mlfn.runtime.lambda_handler` (which loads the model, as Lambda's init).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.runtime_overhead import Context as LambdaContext
from bench.runtime_overhead import function_url_event

MAX_CALLS = 200_000


def _timed(fn: Callable[[], object], seconds: float) -> list[float]:
    out: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and len(out) < MAX_CALLS:
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e3


def measure(model_dir: Path, body: bytes, seconds: float) -> dict[str, float]:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    dtype = np.int64 if first.type == "tensor(int64)" else np.float32
    rows = np.asarray(json.loads(body)["instances"], dtype=dtype)
    batch32 = np.repeat(rows[:1], 32, axis=0)

    from mlfn.runtime.lambda_adapter import build
    from mlfn.runtime.spec import load_spec

    name = load_spec(model_dir).name
    handler = build(model_dir)
    event = function_url_event(f"/v1/models/{name}:predict", body)
    context = LambdaContext()

    def bare() -> object:
        return session.run(None, {first.name: rows})

    def lam() -> object:
        reply = handler(event, context)
        if reply.get("statusCode") != 200:
            raise RuntimeError(f"Lambda handler answered {reply.get('statusCode')}: {str(reply.get('body'))[:300]}")
        return reply

    sink = io.StringIO()  # the handler's EMF metric lines, written to stdout as on Lambda
    with contextlib.redirect_stdout(sink):
        for _ in range(20):
            bare(), lam()
        bare_samples: list[float] = []
        lambda_samples: list[float] = []
        for _ in range(10):  # alternate in short slices so background load falls on both alike
            bare_samples += _timed(bare, seconds / 20)
            lambda_samples += _timed(lam, seconds / 20)
            sink.seek(0)
            sink.truncate()
    run1 = _timed(bare, seconds / 2)
    run32 = _timed(lambda: session.run(None, {first.name: batch32}), seconds / 2)
    bare_ms = statistics.median(bare_samples) * 1e3
    lambda_ms = statistics.median(lambda_samples) * 1e3
    return {
        "bare_run_p50_ms": bare_ms, "bare_run_p99_ms": _p(bare_samples, 0.99),
        "bare_runs_per_s_batch1": len(run1) / sum(run1), "bare_rows_per_s_batch32": 32 * len(run32) / sum(run32),
        "lambda_p50_ms": lambda_ms, "lambda_p99_ms": _p(lambda_samples, 0.99),
        "lambda_overhead_ms": lambda_ms - bare_ms,
    }


def init_seconds(python: Path, model_dir: Path, repeats: int, core: str = "1") -> dict[str, list[float]]:
    """Fresh-interpreter times (s): bare `import onnxruntime` + session, and importing mlfn's Lambda handler."""
    bare = ("import time; t = time.perf_counter(); import onnxruntime as ort; o = ort.SessionOptions(); "
            "o.intra_op_num_threads = 1; o.inter_op_num_threads = 1; "
            f"ort.InferenceSession({str(model_dir / 'model.onnx')!r}, o, providers=['CPUExecutionProvider']); "
            "print(time.perf_counter() - t)")
    handler = ("import time; t = time.perf_counter(); import mlfn.runtime.lambda_handler; "
               "print(time.perf_counter() - t)")
    env = {**os.environ, "MLFN_MODEL_DIR": str(model_dir), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
           "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_REGION": "us-east-1"}
    times: dict[str, list[float]] = {"bare_import_session_s": [], "lambda_init_s": []}
    warm = 1 if repeats > 1 else 0  # a first, untimed round warms the page cache and bytecode
    for i in range(repeats + warm):
        for label, code in (("bare_import_session_s", bare), ("lambda_init_s", handler)):
            done = subprocess.run(["taskset", "-c", core, str(python), "-c", code], capture_output=True, text=True,
                                  env=env, timeout=120, check=True)
            if i >= warm:
                times[label].append(float(done.stdout.strip().splitlines()[-1]))
    return times


if __name__ == "__main__":
    directory, body_file, out_file, budget = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    Path(out_file).write_text(json.dumps(measure(directory, body_file.read_bytes(), float(budget))))
