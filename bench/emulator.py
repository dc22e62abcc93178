"""Measure the local emulator's data plane on a bundled model (default functions/iris).

    .venv/bin/python bench/emulator.py [--model-dir functions/iris] [--requests 500] [--seconds 5] [--cold 5] [--json]

Reports:
- cold start: first request after registration / after scale-to-zero (wall time through HTTPS, and the sandbox's init
  duration) against a bare process that imports onnxruntime, loads the same model and runs it once;
- warm latency through the HTTPS Function URL gateway (keep-alive client) against a direct `session.run`, with the
  part spent inside the sandbox (`x-mlfn-duration-ms`: Runtime API hand-off, awslambdaric, the handler);
- requests per second one sandbox sustains (reserved concurrency 1, one client in a closed loop).
Everything runs on 127.0.0.1; every loop is bounded by a count and a time limit.
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from mlfn.cli.local.data_plane import DataPlaneClient
from mlfn.runtime.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": round(pct(ms, 0.5), 3), "p90_ms": round(pct(ms, 0.9), 3),
            "p99_ms": round(pct(ms, 0.99), 3), "mean_ms": round(statistics.fmean(ms), 3)}


def bare_process(model: Path, feed_json: str, runs: int) -> list[float]:
    """Wall time of a fresh interpreter that imports onnxruntime, loads the model and runs it once."""
    code = ("import json, numpy as np, onnxruntime as ort, sys\n"
            "s = ort.InferenceSession(sys.argv[1])\n"
            "x = np.asarray(json.loads(sys.argv[2]), dtype=np.float32)\n"
            "s.run(None, {s.get_inputs()[0].name: x})\n")
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, str(model), feed_json], check=True)
        out.append((time.perf_counter() - started) * 1000)
    return out


def start_data_plane(state: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "mlfn.cli.local.data_plane", "--state-dir", str(state)],
                               stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (state / "data-plane" / "admin.json").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the data plane process did not start")
        time.sleep(0.05)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=str(ROOT / "functions" / "iris"))
    parser.add_argument("--requests", type=int, default=500, help="warm requests (also capped by --seconds)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time cap of each loop")
    parser.add_argument("--cold", type=int, default=5, help="cold starts to measure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model_dir = Path(args.model_dir).resolve()
    body = (model_dir / "example.json").read_bytes()
    instances = json.loads(body)["instances"]
    path = f"v1/models/{load_spec(model_dir).name}:predict"
    results: dict[str, Any] = {"model": str(model_dir), "python": sys.version.split()[0],
                               "onnxruntime": ort.__version__}

    state = Path(tempfile.mkdtemp(prefix="mlfn-bench-"))
    process = start_data_plane(state)  # its own process, so this client does not share its GIL
    try:
        plane = DataPlaneClient(state)
        settings = dict(auth_type="NONE", memory_mb=2048, timeout_s=30, reserved=1)
        ep = plane.register_lambda("bench", model_dir, idle_s=0.3, **settings)
        url = ep["url"] + path
        cold_wall, cold_init = [], []
        with httpx.Client(verify=ssl.create_default_context(cafile=ep["ca_path"]), timeout=60) as client:
            for _ in range(args.cold):
                deadline = time.monotonic() + 30
                while plane.status()["targets"][0]["pool"]["sandboxes"] and time.monotonic() < deadline:
                    time.sleep(0.05)  # wait for scale to zero
                started = time.perf_counter()
                reply = client.post(url, content=body, headers={"content-type": "application/json"})
                cold_wall.append((time.perf_counter() - started) * 1000)
                assert reply.status_code == 200 and reply.headers["x-mlfn-cold-start"] == "true", reply.text
                cold_init.append(float(reply.headers["x-mlfn-init-duration-ms"]))
            plane.unregister(ep["key"])

            # unreserved: a reserved concurrency of 1 caps a Function URL at 10 requests per second (pool.py); one
            # client in a closed loop keeps one sandbox busy either way
            ep = plane.register_lambda("bench", model_dir, idle_s=600, **{**settings, "reserved": -1})
            url = ep["url"] + path
            client.post(url, content=body, headers={"content-type": "application/json"})  # cold start, not counted
            warm: list[float] = []
            inside: list[float] = []
            stop = time.monotonic() + args.seconds
            while len(warm) < args.requests and time.monotonic() < stop:
                started = time.perf_counter()
                reply = client.post(url, content=body, headers={"content-type": "application/json"})
                warm.append((time.perf_counter() - started) * 1000)
                assert reply.status_code == 200, reply.text
                inside.append(float(reply.headers["x-mlfn-duration-ms"]))
            count, started = 0, time.perf_counter()
            stop = time.monotonic() + args.seconds
            while time.monotonic() < stop and count < 100_000:
                client.post(url, content=body, headers={"content-type": "application/json"})
                count += 1
            rps = count / (time.perf_counter() - started)
        plane.shutdown()
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()

    session = ort.InferenceSession(str(model_dir / "model.onnx"))
    feed = {session.get_inputs()[0].name: np.asarray(instances, dtype=np.float32)}
    session.run(None, feed)
    direct: list[float] = []
    stop = time.monotonic() + args.seconds
    while len(direct) < args.requests and time.monotonic() < stop:
        started = time.perf_counter()
        session.run(None, feed)
        direct.append((time.perf_counter() - started) * 1000)
    bare = bare_process(model_dir / "model.onnx", json.dumps(instances), args.cold)

    results["cold_start_emulator_wall"] = summary(cold_wall)
    results["cold_start_emulator_init"] = summary(cold_init)
    results["cold_start_bare_process"] = summary(bare)
    results["warm_https_gateway"] = summary(warm)
    results["warm_sandbox_invoke"] = summary(inside)  # Runtime API hand-off + awslambdaric + handler
    results["direct_session_run"] = summary(direct)
    results["one_sandbox_requests_per_s"] = round(rps, 1)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"model {model_dir.name}  python {results['python']}  onnxruntime {results['onnxruntime']}")
    for key in ("cold_start_emulator_wall", "cold_start_emulator_init", "cold_start_bare_process",
                "warm_https_gateway", "warm_sandbox_invoke", "direct_session_run"):
        s = results[key]
        print(f"{key:28s} n={s['n']:<4d} p50 {s['p50_ms']:9.3f} ms  p90 {s['p90_ms']:9.3f} ms  "
              f"p99 {s['p99_ms']:9.3f} ms")
    print(f"{'one_sandbox_requests_per_s':28s} {results['one_sandbox_requests_per_s']}")


if __name__ == "__main__":
    main()
