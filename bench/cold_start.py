"""Cold start: the Lambda handler's init and the server's spawn-to-first-200, against their baselines.

    .venv/bin/python bench/cold_start.py [--model-dir functions/iris] [--repeats 7]

Fresh interpreters, bytecode cached by a first untimed round (as an image ships it), the variants taking
turns, medians:
- init: `import onnxruntime; InferenceSession(model)` (bare) vs `import mlfn.runtime.lambda_handler` (imports
  plus the model's session: what Lambda's init phase runs), timed inside the interpreter and as the whole
  process (spawn to exit); the ratio handler / bare is the figure the target (<= 1.3) is about;
- server: spawn to the first `GET /ping` 200 of `python -m mlfn.runtime.server serve` (lean HTTP server, and
  with MLFN_HTTP=uvicorn) and of a plain FastAPI + uvicorn app serving the same model
  (bench/runtime_overhead.py's baseline); ratios mlfn / plain FastAPI.
The machine's load average is printed: on a loaded machine every figure grows, the ratios less so.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OVERHEAD = Path(__file__).resolve().parent / "runtime_overhead.py"
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
TIMEOUT_S = 60.0


def timed_python(code: str, env: dict[str, str]) -> tuple[float, float]:
    """(seconds inside the interpreter as the code prints them, seconds from spawn to exit)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          check=True)
    return float(done.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def first_200(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning a server until its `GET /ping` answers 200 (it logs its port on stderr)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    port: list[int] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            found = LISTENING.search(line)
            if found and not port:
                port.append(int(found.group(1)))

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = started + TIMEOUT_S
        while not port:
            if time.perf_counter() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{argv} did not start")
            time.sleep(0.001)
        while time.perf_counter() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port[0]), timeout=2) as sock:
                    sock.sendall(b"GET /ping HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    if sock.recv(64).startswith(b"HTTP/1.1 200"):
                        return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.002)
        raise RuntimeError(f"{argv} never answered /ping 200")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=str(ROOT / "functions" / "iris"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    model_dir = Path(args.model_dir).resolve()
    model = model_dir / "model.onnx"
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "MLFN_MODEL_DIR": str(model_dir), "PYTHONPYCACHEPREFIX": cache,
               "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("MLFN_HTTP", None)
        timer = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"
        inits = {
            "bare onnxruntime + session": timer.format(
                f"import onnxruntime; onnxruntime.InferenceSession({str(model)!r})"),
            "mlfn Lambda handler init": timer.format("import mlfn.runtime.lambda_handler"),
        }
        serve = [sys.executable, "-m", "mlfn.runtime.server", "serve", "--model-dir", str(model_dir),
                 "--host", "127.0.0.1", "--port", "0"]
        servers = {
            "mlfn server (lean HTTP)": (serve, {}),
            "mlfn server (MLFN_HTTP=uvicorn)": (serve, {"MLFN_HTTP": "uvicorn"}),
            "plain FastAPI + uvicorn": ([sys.executable, str(OVERHEAD), "--serve-baseline", "fastapi",
                                         "--model-dir", str(model_dir)], {}),
        }
        print(f"model {model_dir.name}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
              f"median of {args.repeats} fresh interpreters (bytecode cached)")
        inside: dict[str, list[float]] = {k: [] for k in inits}
        whole: dict[str, list[float]] = {k: [] for k in inits}
        ready: dict[str, list[float]] = {k: [] for k in servers}
        for round_ in range(args.repeats + 1):
            for label, code in inits.items():
                a, b = timed_python(code, env)
                if round_:
                    inside[label].append(a)
                    whole[label].append(b)
            for label, (argv, extra) in servers.items():
                seconds = first_200(argv, {**env, **extra})
                if round_:
                    ready[label].append(seconds)
    med = {k: statistics.median(v) * 1000 for k, v in inside.items()}
    med_whole = {k: statistics.median(v) * 1000 for k, v in whole.items()}
    med_ready = {k: statistics.median(v) * 1000 for k, v in ready.items()}
    print(f"\n{'init (imports + session)':34} {'in-process ms':>14} {'process ms':>11}")
    for label in inits:
        print(f"{label:34} {med[label]:14.0f} {med_whole[label]:11.0f}")
    bare, handler = med["bare onnxruntime + session"], med["mlfn Lambda handler init"]
    print(f"handler init / bare: {handler / bare:.2f}x in-process, "
          f"{med_whole['mlfn Lambda handler init'] / med_whole['bare onnxruntime + session']:.2f}x whole process")
    print(f"\n{'server spawn to first /ping 200':34} {'ms':>14}")
    for label in servers:
        print(f"{label:34} {med_ready[label]:14.0f}")
    plain = med_ready["plain FastAPI + uvicorn"]
    for label in ("mlfn server (lean HTTP)", "mlfn server (MLFN_HTTP=uvicorn)"):
        print(f"{label} / plain FastAPI: {med_ready[label] / plain:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
