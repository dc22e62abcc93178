"""What serving costs on top of the model: Lambda handler import time, and per-request overhead over session.run.

    .venv/bin/python bench/runtime_overhead.py [--model-dir functions/iris] [--requests 2000]

Prints, for one model and one input (a single-row KServe v1 request by default):
- import time of `mlfn.runtime.lambda_handler` in fresh interpreters with bytecode cached (as in an image):
  with the model load (what Lambda's init phase pays), and without it (`mlfn.runtime.lambda_adapter`: the
  same imports, onnxruntime not yet imported), median of 9;
- how soon the server accepts TCP connections and answers /ping 200 after it is spawned;
- per-request latency of a bare `session.run` on the same input, of `InferenceService` called directly
  (decode + run + encode), of the Lambda handler called in-process with a Function URL event, of an ASGI call
  in-process (no HTTP) into mlfn's app and into a plain FastAPI app serving the same service, and over HTTP
  with a keep-alive client against: mlfn's server (`python -m mlfn.runtime.server`), a plain FastAPI app
  serving the same InferenceService (`await request.body()`, `run_in_threadpool`, `Response`), and a bare
  uvicorn ASGI app answering without any model (the floor every uvicorn server pays);
- the overhead of each path over the bare run, and the ratio of plain FastAPI's overhead to mlfn's.

Paths are measured in alternating short batches, so load from other processes falls on all of them alike.
Every server binds 127.0.0.1 port 0 and is stopped at the end; every loop is bounded in count and time.
"""

import argparse
import http.client
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (no `from __future__ import annotations` here: the FastAPI baseline needs its hints as real objects)

ROOT = Path(__file__).resolve().parent.parent
LOOP_SECONDS = 30.0  # no path is measured for longer than this
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


# ----------------------------------------------------------------------------------- measuring


def interleaved(paths: dict[str, Callable[[], object]], count: int, warmup: int,
                rounds: int = 20) -> dict[str, list[float]]:
    """Seconds per call of each path, in `rounds` alternating batches; stops early after the time budget."""
    for fn in paths.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {label: [] for label in paths}
    batch = max(1, count // rounds)
    deadline = time.monotonic() + LOOP_SECONDS * len(paths)
    for _ in range(rounds):
        for label, fn in paths.items():
            out = samples[label]
            for _ in range(batch):
                started = time.perf_counter()
                fn()
                out.append(time.perf_counter() - started)
        if time.monotonic() > deadline:
            break
    return samples


def summary(samples: list[float]) -> tuple[float, float]:
    """(median, p99) in microseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6


def import_seconds(variants: dict[str, str], model_dir: Path, cache: Path, repeats: int = 9) -> dict[str, float]:
    """Median wall time of each `import ...` in fresh interpreters (timed inside them), the variants taking turns;
    bytecode is cached under `cache` by a first, untimed round, as an image ships it."""
    env = {**os.environ, "MLFN_MODEL_DIR": str(model_dir), "PYTHONPYCACHEPREFIX": str(cache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    runs: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(repeats + 1):
        for label, modules in variants.items():
            code = f"import time; t = time.perf_counter(); import {modules}; print(time.perf_counter() - t)"
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                  timeout=120, check=True)
            runs[label].append(float(done.stdout.strip().splitlines()[-1]))
    return {label: statistics.median(values[1:]) for label, values in runs.items()}


# ----------------------------------------------------------------------------------- servers


class Subprocess:
    """A server subprocess that logs `listening on http://127.0.0.1:PORT` on stderr."""

    def __init__(self, argv: list[str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        self.port = 0
        while not self.port:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("server did not start:\n" + "\n".join(self.lines))
            for line in list(self.lines):
                if found := LISTENING.search(line):
                    self.port = int(found.group(1))
            time.sleep(0.02)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", path)
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server never became ready:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def http_post(conn: http.client.HTTPConnection, path: str, body: bytes) -> Callable[[], None]:
    """One POST over a keep-alive connection (the stdlib client: the least client-side cost)."""
    headers = {"content-type": "application/json"}

    def call() -> None:
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {payload[:200]!r}")

    return call


def fastapi_baseline(service: Any) -> Any:
    """The least a plain FastAPI app does to serve the same InferenceService."""
    from fastapi import FastAPI, Request, Response
    from starlette.concurrency import run_in_threadpool

    app = FastAPI()

    @app.post("/v1/models/{name}:predict")
    async def predict(name: str, request: Request) -> Response:
        body = await request.body()
        reply = await run_in_threadpool(service.v1_predict, name, body, dict(request.headers))
        return Response(reply.body, reply.status, dict(reply.headers), media_type=reply.content_type)

    @app.get("/ping")
    async def ping() -> Response:
        return Response(b"")

    return app


def serve_baseline(kind: str, model_dir: str) -> None:
    """Run one baseline server (a subprocess of the benchmark): `fastapi` or `floor`."""
    import socket

    import uvicorn

    sock = socket.create_server(("127.0.0.1", 0))
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
    app: Any
    if kind == "fastapi":
        from mlfn.runtime.service import InferenceService

        app = fastapi_baseline(InferenceService.from_dir(model_dir))
    else:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            while (await receive()).get("more_body"):
                pass
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"{}"})

    config = uvicorn.Config(app, loop="auto", http="auto", lifespan="off", access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


def asgi_call(app: Any, path: str, body: bytes) -> Callable[[], None]:
    """One request through an ASGI app in this process, on an event loop of its own: no HTTP, no client."""
    import asyncio

    loop = asyncio.new_event_loop()
    headers = [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), (b"user-agent", b"bench"), (b"accept", b"*/*")]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"{path}: {message['status']}")

    def call() -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080), "state": {}}
        loop.run_until_complete(app(scope, receive, send))

    return call


# ----------------------------------------------------------------------------------- the run


def function_url_event(path: str, body: bytes) -> dict[str, Any]:
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "x.lambda-url.us-east-1.on.aws"},
        "requestContext": {"http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
                           "requestId": "bench", "stage": "$default"},
        "body": body.decode(), "isBase64Encoded": False,
    }


class Context:
    """The attributes of Lambda's context object the handler reads."""

    aws_request_id = "bench-request"
    function_version = "$LATEST"


def report_imports(model_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as cache:
        times = import_seconds({
            "with": "mlfn.runtime.lambda_handler",
            "without": "mlfn.runtime.lambda_adapter",
            "ort": "mlfn.runtime.lambda_adapter, onnxruntime",
        }, model_dir, Path(cache))
    print(f"lambda handler import, median of 9 fresh interpreters: {times['with'] * 1000:.0f} ms with the model "
          f"load; {times['without'] * 1000:.0f} ms without it ({times['ort'] * 1000:.0f} ms with onnxruntime "
          "imported too)")


def report_server_start(model_dir: Path) -> None:
    """How soon `python -m mlfn.runtime.server` accepts TCP connections, and answers /ping 200, after spawn."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mlfn.runtime.server", "serve", "--model-dir", str(model_dir),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    accepted = ready = None
    try:
        deadline = started + 60
        while accepted is None and time.perf_counter() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                accepted = time.perf_counter() - started
            except OSError:
                time.sleep(0.002)
        while ready is None and time.perf_counter() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    ready = time.perf_counter() - started
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    print(f"server start: accepts TCP connections {accepted * 1000 if accepted else float('nan'):.0f} ms after spawn, "
          f"/ping 200 after {ready * 1000 if ready else float('nan'):.0f} ms")


def measure_requests(model_dir: Path, body: bytes, count: int, warmup: int) -> dict[str, tuple[float, float]]:
    import numpy as np

    from mlfn.runtime.app import create_app
    from mlfn.runtime.lambda_adapter import build
    from mlfn.runtime.service import InferenceService

    service = InferenceService.from_dir(model_dir)
    name = service.spec.name
    path = f"/v1/models/{name}:predict"
    first = service.spec.inputs[0]
    feeds = {first.name: np.asarray(json.loads(body)["instances"], first.dtype.numpy if first.dtype else None)}
    session = service.model.session
    headers = {"content-type": "application/json"}
    handler = build(model_dir)
    event = function_url_event(path, body)
    paths: dict[str, Callable[[], object]] = {
        "bare session.run": lambda: session.run(None, feeds),
        "InferenceService.v1_predict": lambda: service.v1_predict(name, body, headers),
        "Lambda handler in-process": lambda: handler(event, Context()),
        "ASGI in-process: mlfn app": asgi_call(create_app(service), path, body),
        "ASGI in-process: plain FastAPI": asgi_call(fastapi_baseline(service), path, body),
    }
    servers = {
        "HTTP: mlfn server": ["-m", "mlfn.runtime.server", "serve", "--model-dir", str(model_dir),
                              "--host", "127.0.0.1", "--port", "0"],
        "HTTP: plain FastAPI": [__file__, "--serve-baseline", "fastapi", "--model-dir", str(model_dir)],
        "HTTP: bare uvicorn, no model": [__file__, "--serve-baseline", "floor"],
    }
    running: list[Subprocess] = []
    connections: list[http.client.HTTPConnection] = []
    real_stdout = sys.stdout
    try:
        for label, argv in servers.items():
            server = Subprocess([sys.executable, *argv])
            running.append(server)
            if "floor" not in argv:
                server.wait_ready("/ping")
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connections.append(conn)
            paths[label] = http_post(conn, path, body)
        sys.stdout = io.StringIO()  # the handler's EMF lines: written as on Lambda, not shown
        samples = interleaved(paths, count, warmup)
    finally:
        sys.stdout = real_stdout
        for conn in connections:
            conn.close()
        for server in running:
            server.stop()
    return {label: summary(values) for label, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=str(ROOT / "functions" / "iris"))
    parser.add_argument("--body", default='{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
                        help="the v1 request body (default: one iris row)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per path (in 20 alternating rounds)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--serve-baseline", choices=["fastapi", "floor"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline, args.model_dir)
        return 0

    model_dir = Path(args.model_dir).resolve()
    print(f"model: {model_dir}  body: {args.body}  load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    report_imports(model_dir)
    report_server_start(model_dir)
    results = measure_requests(model_dir, args.body.encode(), args.requests, args.warmup)

    bare = results["bare session.run"][0]
    print(f"\n{'path':32} {'median us':>10} {'p99 us':>10} {'overhead us':>12}")
    for label, (median, p99) in results.items():
        overhead = "" if label == "bare session.run" or "no model" in label else f"{median - bare:12.0f}"
        print(f"{label:32} {median:10.0f} {p99:10.0f} {overhead}")
    mlfn_http = results["HTTP: mlfn server"][0] - bare
    fastapi_http = results["HTTP: plain FastAPI"][0] - bare
    floor = results["HTTP: bare uvicorn, no model"][0]
    codec = results["InferenceService.v1_predict"][0] - bare
    lambda_overhead = results["Lambda handler in-process"][0] - bare
    mlfn_asgi = results["ASGI in-process: mlfn app"][0] - bare
    fastapi_asgi = results["ASGI in-process: plain FastAPI"][0] - bare
    print(f"\nplain FastAPI overhead / mlfn overhead: over HTTP {fastapi_http / mlfn_http:.2f}x, "
          f"in-process ASGI {fastapi_asgi / mlfn_asgi:.2f}x")
    print(f"serving layer alone (HTTP overhead minus the uvicorn floor and the codec): mlfn "
          f"{mlfn_http - floor - codec:.0f} us, plain FastAPI {fastapi_http - floor - codec:.0f} us")
    print(f"Lambda handler overhead over session.run: {lambda_overhead:.0f} us "
          f"(codec {codec:.0f} us, Mangum + core + EMF {lambda_overhead - codec:.0f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
