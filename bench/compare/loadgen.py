"""The load generator: Debian's `wrk` pinned to core 0, or, where wrk is missing, a bounded keep-alive client.

Both send the same POST body over keep-alive connections to 127.0.0.1 for a fixed time and report
successful requests/s, p50 and p99 latency (of all responses) and the count of failed or non-2xx requests.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

LOAD_CORE = "0"
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BENCH_BODY_FILE"), "rb")
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %f, "failed": %d, "non_2xx": %d, "p50_ms": %f, "p99_ms": %f}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    failed: int
    non_2xx: int
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        """Successful (2xx) responses per second."""
        return (self.requests - self.non_2xx) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "requests_per_s": self.per_second}


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_load(port: int, path: str, body: bytes, *, connections: int, seconds: float,
             use_wrk: bool | None = None) -> LoadResult:
    """POST `body` to http://127.0.0.1:port/path on `connections` keep-alive connections for `seconds`."""
    if use_wrk is None:
        use_wrk = have_wrk()
    if use_wrk:
        return _wrk(port, path, body, connections, seconds)
    return _threaded_client(port, path, body, connections, seconds)


def _wrk(port: int, path: str, body: bytes, connections: int, seconds: float) -> LoadResult:
    with tempfile.TemporaryDirectory() as tmp:
        script, body_file = Path(tmp) / "post.lua", Path(tmp) / "body.json"
        script.write_text(LUA)
        body_file.write_bytes(body)
        argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}{path}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                              env={**os.environ, "BENCH_BODY_FILE": str(body_file)})
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            return LoadResult(**json.loads(line[6:]))
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}): {done.stderr.strip()[:300]}")


def _threaded_client(port: int, path: str, body: bytes, connections: int, seconds: float) -> LoadResult:
    """wrk's stand-in: one thread per keep-alive connection (the stdlib client), bounded by time and count."""
    headers = {"content-type": "application/json"}
    latencies: list[float] = []
    failures = [0, 0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    max_requests = 200_000

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        failed = non_2xx = 0
        while time.monotonic() < deadline and len(mine) < max_requests // connections:
            started = time.perf_counter()
            try:
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                failed += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            mine.append(time.perf_counter() - started)
            if not 200 <= response.status < 300:
                non_2xx += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            failures[0] += failed
            failures[1] += non_2xx

    started = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    elapsed = time.monotonic() - started
    ordered = sorted(latencies) or [float("nan")]
    return LoadResult(len(latencies), elapsed, failures[0], failures[1], ordered[len(ordered) // 2] * 1e3,
                      ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3)
