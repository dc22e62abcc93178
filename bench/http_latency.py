"""Per-request latency over HTTP with a minimal client: mlfn's server (lean HTTP/1.1 and uvicorn) vs plain FastAPI.

    .venv/bin/python bench/http_latency.py [--model-dir functions/iris] [--requests 4000]
                                           [--server-cpu 1 --client-cpu 0]

The client is a raw keep-alive socket sending one pre-built request and reading the response by its
Content-Length, so almost all of the measured time is the server's (http.client costs more than a lean
server does). Servers are pinned to `--server-cpu` and this client to `--client-cpu` (taskset semantics
through `os.sched_setaffinity`), measured in alternating rounds; medians and p99 in microseconds, with the
bare `session.run` of the same input and the overhead over it, and the machine's load average.
Every server binds 127.0.0.1 port 0 and is stopped at the end; loops are bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime_overhead import Subprocess, interleaved  # the sibling benchmark's server runner and loop

ROOT = Path(__file__).resolve().parent.parent
OVERHEAD = Path(__file__).resolve().parent / "runtime_overhead.py"


def raw_client(port: int, request: bytes) -> tuple[Callable[[], bytes], socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call() -> bytes:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += sock.recv(65536)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace") + body.decode(errors="replace"))
        return body

    return call, sock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=str(ROOT / "functions" / "iris"))
    parser.add_argument("--body", default='{"instances": [[5.1, 3.5, 1.4, 0.2]]}')
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--client-cpu", type=int, default=0)
    args = parser.parse_args()
    model_dir = Path(args.model_dir).resolve()
    body = args.body.encode()

    import numpy as np

    from mlfn.runtime.service import InferenceService

    service = InferenceService.from_dir(model_dir)
    name = service.spec.name
    path = f"/v1/models/{name}:predict"
    first = service.spec.inputs[0]
    feeds = {first.name: np.asarray(json.loads(body)["instances"], first.dtype.numpy if first.dtype else None)}
    session = service.model.session
    request = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\n\r\n").encode() + body

    pin = ["taskset", "-c", str(args.server_cpu)]
    servers = {
        "mlfn (lean HTTP/1.1)": ({}, [sys.executable, "-m", "mlfn.runtime.server", "serve", "--model-dir",
                                      str(model_dir), "--host", "127.0.0.1", "--port", "0"]),
        "mlfn (MLFN_HTTP=uvicorn)": ({"MLFN_HTTP": "uvicorn"}, [sys.executable, "-m", "mlfn.runtime.server", "serve",
                                                                "--model-dir", str(model_dir), "--host", "127.0.0.1",
                                                                "--port", "0"]),
        "plain FastAPI + uvicorn": ({}, [sys.executable, str(OVERHEAD), "--serve-baseline", "fastapi",
                                         "--model-dir", str(model_dir)]),
    }
    print(f"model {model_dir.name}, body {args.body}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          f"CPUs; servers on CPU {args.server_cpu}, client on CPU {args.client_cpu}")
    running: list[Subprocess] = []
    socks: list[socket.socket] = []
    calls: dict[str, Callable[[], object]] = {"bare session.run": lambda: session.run(None, feeds)}
    saved = dict(os.environ)
    try:
        for label, (env, argv) in servers.items():
            os.environ.update(env)
            try:
                server = Subprocess(pin + argv)
            finally:
                os.environ.clear()
                os.environ.update(saved)
            running.append(server)
            server.wait_ready("/ping")
            call, sock = raw_client(server.port, request)
            socks.append(sock)
            calls[label] = call
        os.sched_setaffinity(0, {args.client_cpu})
        samples = interleaved(calls, args.requests, warmup=200)
    finally:
        for sock in socks:
            sock.close()
        for server in running:
            server.stop()
    bare = statistics.median(samples["bare session.run"]) * 1e6
    print(f"\n{'path':28} {'median us':>10} {'p99 us':>10} {'overhead us':>12}")
    overheads = {}
    for label, values in samples.items():
        ordered = sorted(values)
        median, p99 = statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6
        overheads[label] = median - bare
        extra = "" if label == "bare session.run" else f"{median - bare:12.0f}"
        print(f"{label:28} {median:10.0f} {p99:10.0f} {extra}")
    fastapi = overheads["plain FastAPI + uvicorn"]
    for label in ("mlfn (lean HTTP/1.1)", "mlfn (MLFN_HTTP=uvicorn)"):
        print(f"{label}: overhead {overheads[label] / fastapi:.2f} of plain FastAPI's "
              f"({fastapi / overheads[label]:.1f}x less)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
