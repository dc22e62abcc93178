"""Batch inference: rows/s through `mlfn batch --local` against bare onnxruntime, side by side in one run.

    .venv/bin/python -m bench.batch [--rows-mlp 6000] [--rows-forest 40000] [--big-rows 1000000] [--core 0]
                                    [--before /path/to/other/checkout/.venv/bin/python]

- For the MLP (784-512-512-10) and the random forest (64 features) of bench/models.py: the same rows as JSON Lines
  in the emulator's S3, scored by `mlfn batch MODEL_DIR --local --records-per-call 64 --concurrency 1` pinned to
  one core (`--core`; the runtime in that process, one onnxruntime thread), against bare onnxruntime on the same
  core, one thread, batches of 64 over the same rows already in a float32 array. The emulator's control plane
  (moto's S3) is pinned to the other core. Figures: rows/s of each (median of `--rounds`, interleaved) and the ratio;
  and rows per CPU second, which a shared machine's other load barely moves (for `mlfn batch`: the command's CPU
  time less that of the same command over one call's rows, so start-up and model load are left out).
  `--before PYTHON` also runs another checkout's `mlfn batch` (its venv's interpreter) in the same rounds.
- A `--big-rows` JSON Lines input (the iris classifier of functions/, 4 features, so that a million rows stay a
  few tens of MB in moto's memory) through the same command: rows/s and the job's peak memory, next to the same
  job over a tenth of the rows (memory must not grow with the input).

Nothing is asserted; tests/bench/test_batch_smoke.py runs `--smoke` (a few rows) end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BATCH = 64
BUCKET = "bench"


def pinned(core: int) -> Any:
    return lambda: os.sched_setaffinity(0, {core})


def put_rows(s3: Any, key: str, rows: np.ndarray, work: Path, decimals: int = 4) -> int:
    """Upload rows as a JSON Lines file (numbers rounded as a data file would hold them), as `aws s3 cp` does
    (multipart above 8 MB); returns the object's bytes."""
    import orjson

    path = work / "upload.jsonl"
    with open(path, "wb") as f:
        for row in np.round(rows.astype(np.float64), decimals).tolist():
            f.write(orjson.dumps(row) + b"\n")
    s3.upload_file(str(path), BUCKET, key)
    size = path.stat().st_size
    path.unlink()
    return size


def mlfn_batch(model_dir: Path, key: str, out: str, core: int, env: dict[str, str],
               python: str = sys.executable) -> dict[str, Any]:
    """One `mlfn batch --local` run pinned to `core` (by `python`: another venv runs another checkout's mlfn);
    its JSON summary plus the wall time and the CPU time (`cpu_s`) of the whole command."""
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(
        [python, "-m", "mlfn.cli.main", "batch", str(model_dir), "--input", f"s3://{BUCKET}/{key}",
         "--output", f"s3://{BUCKET}/{out}/", "--local", "--json", "--quiet", "--records-per-call", str(BATCH),
         "--concurrency", "1"],
        capture_output=True, text=True, env=env, preexec_fn=pinned(core), timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"mlfn batch failed: {done.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(done.stdout)
    summary["wall_s"] = time.perf_counter() - started
    summary["cpu_s"] = _children_cpu() - cpu
    return summary


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_rate(rows: int, big: dict[str, Any], small: dict[str, Any]) -> float:
    """Rows per CPU second of `mlfn batch` past its fixed cost (start-up, model load, job set-up): the CPU time of
    a run over `rows` less that of a run over one call's rows. The machine's other load barely moves it, unlike
    rows per wall second."""
    spent = big["cpu_s"] - small["cpu_s"]
    return (rows - BATCH) / spent if spent > 0 else float("nan")  # nan: too few rows to tell (`--smoke`)


ORT_SCRIPT = """
import sys, time, numpy as np, onnxruntime as ort
path, data, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
options = ort.SessionOptions(); options.intra_op_num_threads = 1; options.inter_op_num_threads = 1
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
rows = np.load(data); name = session.get_inputs()[0].name
session.run(None, {name: rows[:batch]})
started, cpu = time.perf_counter(), time.process_time()
for start in range(0, len(rows), batch):
    session.run(None, {name: rows[start:start + batch]})
print(len(rows) / (time.perf_counter() - started), len(rows) / (time.process_time() - cpu))
"""


def bare_onnxruntime(model: Path, rows: np.ndarray, core: int, work: Path) -> tuple[float, float]:
    """Rows per wall second and per CPU second of onnxruntime alone (one thread, pinned to `core`) over `rows` in
    batches of 64."""
    data = work / "rows.npy"
    np.save(data, rows.astype(np.float32))
    done = subprocess.run([sys.executable, "-c", ORT_SCRIPT, str(model), str(data), str(BATCH)],
                          capture_output=True, text=True, preexec_fn=pinned(core), timeout=3600, check=True)
    wall, cpu = done.stdout.split()
    return float(wall), float(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows-mlp", type=int, default=6000)
    parser.add_argument("--rows-forest", type=int, default=40000)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="a few rows, one round: checks the path, not speed")
    parser.add_argument("--before", default=None, metavar="PYTHON",
                        help="also run `mlfn batch` with this interpreter (another checkout's venv, e.g. main's), "
                             "interleaved in the same rounds: before and after side by side")
    args = parser.parse_args()
    if args.smoke:
        args.rows_mlp, args.rows_forest, args.big_rows, args.rounds = 128, 256, 2000, 1

    sys.path.insert(0, str(ROOT))
    from bench.models import DEFAULT_CACHE, ensure_model
    from mlfn.cli.local.control_plane import client_environment, start_process, stop_process

    cores = sorted(os.sched_getaffinity(0))
    other = next((c for c in cores if c != args.core), args.core)
    print(f"cores: mlfn batch and onnxruntime on {args.core}, the emulator's S3 on {other}; "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="mlfn-bench-batch-") as tmp:
        work = Path(tmp)
        url = start_process(work / "local", timeout_s=120)
        try:
            pid = json.loads((work / "local" / "control-plane.json").read_text())["pid"]
            os.sched_setaffinity(int(pid), {other})
            env = {**os.environ, **client_environment(url), "MLFN_HOME": str(work)}
            os.environ.update(client_environment(url))
            import boto3

            s3 = boto3.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            rng = np.random.default_rng(20261204)
            results: dict[str, Any] = {}
            for name, count, width in (("mlp", args.rows_mlp, 784), ("forest", args.rows_forest, 64)):
                model_dir = ensure_model(name, args.cache or DEFAULT_CACHE)
                rows = rng.standard_normal((count, width)).astype(np.float32)
                size = put_rows(s3, f"{name}/rows.jsonl", rows, work)
                put_rows(s3, f"{name}/small.jsonl", rows[:BATCH], work)  # one call: the fixed CPU cost
                rows = np.round(rows.astype(np.float64), 4).astype(np.float32)  # exactly what the file holds
                pythons = {"after": sys.executable, **({"before": args.before} if args.before else {})}
                rates: dict[str, list[float]] = {f"{p}{unit}": [] for p in pythons for unit in ("", "_cpu")}
                ort_rates, ort_cpu_rates = [], []
                for i in range(args.rounds):  # interleaved, so load changes hit all alike
                    for label, python in pythons.items():
                        summary = mlfn_batch(model_dir, f"{name}/rows.jsonl", f"{name}-{label}-{i}", args.core, env,
                                             python)
                        assert summary["Records"] == count and summary["FailedRecords"] == 0, summary
                        small = mlfn_batch(model_dir, f"{name}/small.jsonl", f"{name}-{label}-small-{i}", args.core,
                                           env, python)
                        rates[label].append(summary["RecordsPerSecond"])
                        rates[f"{label}_cpu"].append(cpu_rate(count, summary, small))
                    wall, cpu = bare_onnxruntime(model_dir / "model.onnx", rows, args.core, work)
                    ort_rates.append(wall)
                    ort_cpu_rates.append(cpu)
                ort_rate, ort_cpu = statistics.median(ort_rates), statistics.median(ort_cpu_rates)
                results[name] = {"rows": count, "input_mb": round(size / 2**20, 1),
                                 "onnxruntime_rows_s": round(ort_rate, 1), "onnxruntime_rows_cpu_s": round(ort_cpu, 1)}
                print(f"{name:7s} {count:>9,} rows ({size / 2**20:.1f} MB JSONL), {BATCH} rows/call; bare onnxruntime "
                      f"{ort_rate:,.0f} rows/s, {ort_cpu:,.0f} rows/CPU-s")
                for label in pythons:
                    wall_rate, cpu_rows = statistics.median(rates[label]), statistics.median(rates[f"{label}_cpu"])
                    key = "mlfn_batch" if label == "after" else "before"
                    results[name].update({f"{key}_rows_s": wall_rate, f"{key}_ratio": round(wall_rate / ort_rate, 3),
                                          f"{key}_rows_cpu_s": round(cpu_rows, 1),
                                          f"{key}_cpu_ratio": round(cpu_rows / ort_cpu, 3)})
                    print(f"{'':7s} mlfn batch{' (' + args.before + ')' if label == 'before' else ''}: "
                          f"{wall_rate:,.0f} rows/s, ratio {wall_rate / ort_rate:.0%}; {cpu_rows:,.0f} rows/CPU-s, "
                          f"ratio {cpu_rows / ort_cpu:.0%}")
            iris = ROOT / "functions" / "iris"
            for count in (args.big_rows // 10, args.big_rows):
                rows = rng.uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], size=(count, 4))
                size = put_rows(s3, f"big-{count}/rows.jsonl", rows, work, decimals=2)
                for label, python in (("", sys.executable), ("before", args.before)):
                    if python is None:
                        continue
                    summary = mlfn_batch(iris, f"big-{count}/rows.jsonl", f"big-{count}-out{label}", args.core, env,
                                         python)
                    assert summary["Records"] == count, summary
                    results[f"iris-{count}{'-' + label if label else ''}"] = {
                        "rows": count, "input_mb": round(size / 2**20, 1), "rows_s": summary["RecordsPerSecond"],
                        "peak_memory_mb": summary["PeakMemoryMB"]}
                    print(f"iris    {count:>9,} rows ({size / 2**20:.1f} MB JSONL){' ' + label if label else ''}: "
                          f"{summary['RecordsPerSecond']:,.0f} rows/s, job peak memory "
                          f"{summary['PeakMemoryMB']:.0f} MB")
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            print(json.dumps(results))
        finally:
            stop_process(work / "local")
    return 0


if __name__ == "__main__":
    sys.exit(main())
