"""Two trees of the runtime side by side in one run: a base commit's `runtime_layer/` against the working tree's.

    .venv/bin/python -m bench.before_after [--base main] [--model functions/iris] [--rounds 3]

Each side is a copy of `runtime_layer/` installed as `mlfn.runtime` in a temporary folder put first on
PYTHONPATH (each process prints the file it imported, and the run stops if it is not that side's). Rounds
alternate the sides (ABBA), so load from other processes falls on both alike. Per side and round:
- Lambda init: a fresh interpreter importing `mlfn.runtime.lambda_handler` (model load included);
- Lambda per request: the handler called in-process with a Function URL event, and a bare `session.run` on
  the same input (`bench.compare.inprocess`); overhead = handler p50 - bare p50;
- the server (`python -m mlfn.runtime.server`) pinned to core 1: cold start (spawn to the first 200 on a
  predict request), latency at concurrency 1 (overhead = p50 - bare p50), requests per second at concurrency
  32 (wrk when installed, else the built-in client), and peak resident memory (VmHWM) after the load.
Prints medians and each side's best round (lowest time, highest rate); raw rounds go to `--out` (JSON) when given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.compare import loadgen
from bench.compare.__main__ import request_body
from bench.compare.servers import SERVER_CORE, _status, _tree, free_port, post

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 120.0


def side_tree(dest: Path, base: str | None) -> Path:
    """A folder holding `mlfn/runtime` = `runtime_layer/` at `base` (a git commit), or the working tree's."""
    package = dest / "mlfn"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if base is None:
        shutil.copytree(ROOT / "runtime_layer", package / "runtime",
                        ignore=shutil.ignore_patterns("__pycache__"))
    else:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", base, "runtime_layer"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        (dest / "runtime_layer").rename(package / "runtime")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)  # bytecode, as in an image
    return dest


def env_for(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1", "MLFN_LOG_LEVEL": "warning"}


def check_side(tree: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import mlfn.runtime as r; print(r.__file__)"], env=env_for(tree),
                          capture_output=True, text=True, check=True)
    if not done.stdout.strip().startswith(str(tree)):
        raise SystemExit(f"PYTHONPATH did not select {tree}: mlfn.runtime came from {done.stdout.strip()}")


def lambda_init_s(tree: Path, model_dir: Path) -> float:
    code = "import time; t = time.perf_counter(); import mlfn.runtime.lambda_handler; print(time.perf_counter() - t)"
    env = {**env_for(tree), "MLFN_MODEL_DIR": str(model_dir), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
           "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_REGION": "us-east-1"}
    done = subprocess.run(["taskset", "-c", SERVER_CORE, sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True, timeout=120)
    return float(done.stdout.strip().splitlines()[-1])


def lambda_per_request(tree: Path, model_dir: Path, body: bytes, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        body_file, out_file = Path(tmp) / "body.json", Path(tmp) / "out.json"
        body_file.write_bytes(body)
        subprocess.run(["taskset", "-c", SERVER_CORE, sys.executable, "-m", "bench.compare.inprocess", str(model_dir),
                        str(body_file), str(out_file), str(seconds)], check=True, cwd=ROOT, env=env_for(tree),
                       timeout=600, stdout=subprocess.DEVNULL)
        result: dict[str, float] = json.loads(out_file.read_text())
        return result


def server_figures(tree: Path, model_dir: Path, path: str, body: bytes, seconds: float) -> dict[str, float]:
    port = free_port()
    argv = ["taskset", "-c", SERVER_CORE, sys.executable, "-m", "mlfn.runtime.server", "serve", "--model-dir",
            str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env_for(tree), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        cold = None
        while time.perf_counter() - started < START_TIMEOUT_S and proc.poll() is None:
            try:
                if post(port, path, body, timeout=30)[0] == 200:
                    cold = time.perf_counter() - started
                    break
            except OSError:
                pass
            time.sleep(0.005)
        if cold is None:
            raise RuntimeError(f"the server of {tree} gave no 200 on {path}")
        loadgen.run_load(port, path, body, connections=32, seconds=1)  # warm-up
        c1 = loadgen.run_load(port, path, body, connections=1, seconds=seconds)
        c32 = loadgen.run_load(port, path, body, connections=32, seconds=seconds)
        peak_kb = sum(_status(pid).get("VmHWM", 0) for pid in _tree(proc.pid))
        return {"cold_start_s": cold, "c1_p50_ms": c1.p50_ms, "c32_rps": c32.per_second,
                "c32_p99_ms": c32.p99_ms, "peak_rss_mb": peak_kb / 1024,
                "failed": float(c1.failed + c1.non_2xx + c32.failed + c32.non_2xx)}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def one_round(tree: Path, model_dir: Path, path: str, body: bytes, seconds: float) -> dict[str, float]:
    inproc = lambda_per_request(tree, model_dir, body, seconds)
    served = server_figures(tree, model_dir, path, body, seconds)
    bare = inproc["bare_run_p50_ms"]
    return {"lambda_init_ms": lambda_init_s(tree, model_dir) * 1e3,
            "lambda_overhead_us": (inproc["lambda_p50_ms"] - bare) * 1e3,
            "c1_overhead_us": (served["c1_p50_ms"] - bare) * 1e3,
            "c32_rps": served["c32_rps"], "cold_start_ms": served["cold_start_s"] * 1e3,
            "peak_rss_mb": served["peak_rss_mb"], "bare_run_us": bare * 1e3, "failed": served["failed"]}


ROWS = (("HTTP overhead at concurrency 1 (p50 - bare run)", "c1_overhead_us", "µs"),
        ("requests per second at concurrency 32", "c32_rps", "/s"),
        ("cold start (spawn to first 200)", "cold_start_ms", "ms"),
        ("Lambda init (import + model load)", "lambda_init_ms", "ms"),
        ("Lambda per-request overhead (in-process)", "lambda_overhead_us", "µs"),
        ("server peak RSS (VmHWM)", "peak_rss_mb", "MB"),
        ("bare session.run p50 (reference)", "bare_run_us", "µs"))


def table(rounds: dict[str, list[dict[str, float]]], labels: tuple[str, str]) -> str:
    """Medians, and the best round of each side (least disturbed by other processes: the lowest time, the
    highest rate), with after / before for both."""
    before, after = labels
    lines = [f"| figure | {before} median | {after} median | ratio | {before} best | {after} best | ratio |",
             "|---|---|---|---|---|---|---|"]
    for title, key, unit in ROWS:
        best = max if key.endswith("rps") else min
        a = statistics.median(r[key] for r in rounds[before])
        b = statistics.median(r[key] for r in rounds[after])
        x = best(r[key] for r in rounds[before])
        y = best(r[key] for r in rounds[after])
        lines.append(f"| {title} | {a:,.1f} {unit} | {b:,.1f} {unit} | {b / a:.2f} | {x:,.1f} {unit} | "
                     f"{y:,.1f} {unit} | {y / x:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="the commit whose runtime_layer is 'before' (default main)")
    parser.add_argument("--model", type=Path, default=ROOT / "functions" / "iris")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="per load phase")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from mlfn.runtime.spec import load_spec

    model_dir = args.model.resolve()
    body = request_body(model_dir)
    path = f"/v1/models/{load_spec(model_dir).name}:predict"
    base_commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base], check=True,
                                 capture_output=True, text=True).stdout.strip()
    labels = (f"before ({base_commit})", "after (working tree)")
    rounds: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    with tempfile.TemporaryDirectory(prefix="mlfn-before-after-") as tmp:
        trees = {labels[0]: side_tree(Path(tmp) / "before", args.base), labels[1]: side_tree(Path(tmp) / "after", None)}
        for tree in trees.values():
            check_side(tree)
        for i in range(args.rounds):
            order = labels if i % 2 == 0 else labels[::-1]
            for label in order:
                print(f"round {i + 1}/{args.rounds}: {label}", file=sys.stderr, flush=True)
                rounds[label].append(one_round(trees[label], model_dir, path, body, args.seconds))
    load1 = os.getloadavg()[0]
    print(f"model {model_dir.name}, {args.rounds} rounds (medians), load generator: "
          f"{'wrk' if loadgen.have_wrk() else 'built-in client'}, load average {load1:.1f} at the end")
    print(table(rounds, labels))
    if args.out:
        args.out.write_text(json.dumps({"labels": labels, "rounds": rounds}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
