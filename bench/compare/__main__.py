"""One command: mlfn's server and Lambda handler beside plain FastAPI, KServe, BentoML and bare onnxruntime.

    .venv/bin/python -m bench.compare            # the full run (installs the alternatives' venvs on first use)
    .venv/bin/python -m bench.compare --smoke    # seconds: MLP only, mlfn + bare (+ FastAPI if its venv exists)

The harness pins itself and the load generator to core 0 and every server to core 1. For each model it measures
fresh-interpreter init (bare onnxruntime vs the Lambda handler), then runs interleaved rounds (round r starts at
entry r mod n: A B C D, B C D A, ...) over the in-process probe (bare onnxruntime and the Lambda handler in one
process on core 1) and the servers: each round spawns a server once for a cold start alone and once more for the
load (cold start, warm-up, concurrency 1, concurrency 32, peak RSS), and stops it.
Figures are medians over rounds. Results: a table per figure on stdout, JSON in
.mlfn/bench/results-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import models as bench_models

from . import inprocess, loadgen, report, venvs
from .servers import KINDS, ROOT, RunningServer

BENCH_HOME = ROOT / ".mlfn" / "bench"
INPROCESS = "in-process (bare onnxruntime, Lambda handler)"
HARNESS_CORE = 0


def request_body(model_dir: Path) -> bytes:
    """A one-row KServe v1 body: the model's sample.json, else a seeded random row of its input width."""
    sample = model_dir / "sample.json"
    if sample.exists():
        return sample.read_bytes()
    from mlfn.runtime.spec import load_spec

    width = load_spec(model_dir).inputs[0].shape[-1]
    rng = random.Random(7)
    return json.dumps({"instances": [[round(rng.gauss(0, 1), 6) for _ in range(int(width))]]}).encode()


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure_server(kind_label: str, python: Path, model_dir: Path, name: str, body: bytes, cfg: argparse.Namespace,
                   log: Path) -> dict[str, Any]:
    kind = KINDS[kind_label]
    cold_starts = []
    for _ in range(cfg.extra_cold_starts):
        cold = RunningServer(kind, python, model_dir, name, body, log)
        cold_starts.append(cold.cold_start_s)
        cold.stop()
    server = RunningServer(kind, python, model_dir, name, body, log)
    try:
        cold_starts.append(server.cold_start_s)
        if cfg.warmup_seconds > 0:
            loadgen.run_load(server.port, server.path, body, connections=cfg.connections,
                             seconds=cfg.warmup_seconds, use_wrk=cfg.wrk)
        c1 = loadgen.run_load(server.port, server.path, body, connections=1, seconds=cfg.c1_seconds, use_wrk=cfg.wrk)
        c32 = loadgen.run_load(server.port, server.path, body, connections=cfg.connections,
                               seconds=cfg.c32_seconds, use_wrk=cfg.wrk)
        _, peak = server.tree_rss_mb()
    finally:
        server.stop()
    return {"cold_starts_s": cold_starts, "c1": c1.as_dict(), "c32": c32.as_dict(), "peak_rss_mb": peak}


def run_model(model: str, cfg: argparse.Namespace, pythons: dict[str, Path], log: Path) -> dict[str, Any]:
    model_dir = bench_models.ensure_model(model, cfg.cache)
    body = request_body(model_dir)
    from mlfn.runtime.spec import load_spec

    name = load_spec(model_dir).name
    result: dict[str, Any] = {"model_dir": str(model_dir), "body_bytes": len(body), "servers": {}}
    note(f"[{model}] fresh-interpreter init x{cfg.init_repeats}")
    result["init"] = inprocess.init_seconds(Path(sys.executable), model_dir, cfg.init_repeats)
    order = [INPROCESS, *pythons]
    inproc_rounds: list[dict[str, float]] = []
    for round_no in range(cfg.rounds):
        shift = round_no % len(order)
        for label in order[shift:] + order[:shift]:
            note(f"[{model}] round {round_no + 1}/{cfg.rounds}: {label}")
            if label == INPROCESS:
                inproc_rounds.append(measure_inprocess(model_dir, body, cfg.inproc_seconds))
                continue
            try:
                measured = measure_server(label, pythons[label], model_dir, name, body, cfg, log)
            except Exception as exc:  # one failing server must not lose the others' figures
                traceback.print_exc(file=log.open("a"))
                measured = {"error": f"{type(exc).__name__}: {exc}"}
                note(f"  {label} failed: {measured['error']}")
            result["servers"].setdefault(label, []).append(measured)
    result["inprocess_rounds"] = inproc_rounds
    result["inprocess"] = {key: statistics.median(r[key] for r in inproc_rounds) for key in inproc_rounds[0]}
    return result


def measure_inprocess(model_dir: Path, body: bytes, seconds: float) -> dict[str, float]:
    """Bare onnxruntime and the Lambda handler, in one process on the server core (bench.compare.inprocess)."""
    with tempfile.TemporaryDirectory() as tmp:
        body_file, out_file = Path(tmp) / "body.json", Path(tmp) / "out.json"
        body_file.write_bytes(body)
        subprocess.run(["taskset", "-c", "1", sys.executable, "-m", "bench.compare.inprocess", str(model_dir),
                        str(body_file), str(out_file), str(seconds)], check=True, cwd=ROOT, timeout=600)
        result: dict[str, float] = json.loads(out_file.read_text())
        return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long run for CI: MLP only, mlfn + bare (+ FastAPI if installed), no installs")
    parser.add_argument("--models", default="mlp,forest,minilm", help="comma-separated: mlp, forest, minilm")
    parser.add_argument("--servers", default="mlfn,fastapi,kserve,bentoml", help="comma-separated server kinds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--c1-seconds", type=float, default=5)
    parser.add_argument("--c32-seconds", type=float, default=10)
    parser.add_argument("--warmup-seconds", type=float, default=2)
    parser.add_argument("--inproc-seconds", type=float, default=8)
    parser.add_argument("--init-repeats", type=int, default=7)
    parser.add_argument("--extra-cold-starts", type=int, default=1,
                        help="spawns per server and round for a cold start alone, besides the one under load")
    parser.add_argument("--cache", type=Path, default=bench_models.DEFAULT_CACHE, help="model cache folder")
    parser.add_argument("--out", type=Path, default=BENCH_HOME, help="folder for results-<timestamp>.json")
    parser.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                        help="print the tables of an earlier run's results file and exit (measures nothing)")
    parser.add_argument("--no-wrk", dest="wrk", action="store_false", default=None,
                        help="use the built-in keep-alive client even if wrk is installed")
    args = parser.parse_args(argv)
    if args.smoke:
        args.models, args.rounds, args.connections = "mlp", 1, 8
        args.c1_seconds = args.c32_seconds = 1
        args.warmup_seconds = 0
        args.inproc_seconds, args.init_repeats, args.extra_cold_starts = 1, 1, 0
    return args


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    if cfg.report:
        earlier = json.loads(cfg.report.read_text())
        print_report(earlier, {model: report.summarise(data) for model, data in earlier["models"].items()})
        return 0
    os.sched_setaffinity(0, {HARNESS_CORE})
    compile_runtime()
    cfg.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    log = cfg.out / f"servers-{stamp}.log"
    pythons: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for label in cfg.servers.split(","):
        kind = KINDS[label]
        if kind.venv is None:
            pythons[label] = Path(sys.executable)
        elif cfg.smoke and not venvs.is_installed(BENCH_HOME / "venvs", kind.venv):
            skipped[label] = "venv not installed (smoke mode installs nothing)"
        elif cfg.smoke and label != "fastapi":
            skipped[label] = "not part of the smoke run"
        else:
            if not venvs.is_installed(BENCH_HOME / "venvs", kind.venv):
                note(f"installing {label} into {BENCH_HOME / 'venvs' / kind.venv} (first use; pinned versions)")
            pythons[label] = venvs.ensure(BENCH_HOME / "venvs", kind.venv, log=cfg.out / f"install-{kind.venv}.log")
    for label, why in skipped.items():
        note(f"skipping {label}: {why}")
    load_before = os.getloadavg()
    started = time.time()
    results: dict[str, Any] = {
        "started": stamp, "smoke": cfg.smoke, "commit": _git_commit(), "cpus": os.cpu_count(),
        "load_generator": "wrk" if (cfg.wrk if cfg.wrk is not None else loadgen.have_wrk()) else "built-in client",
        "load_average_before": load_before, "config": {k: str(v) for k, v in vars(cfg).items()},
        "skipped": skipped, "models": {},
    }
    for model in cfg.models.split(","):
        results["models"][model] = run_model(model, cfg, pythons, log)
    results["load_average_after"] = os.getloadavg()
    results["seconds"] = time.time() - started
    summaries = {model: report.summarise(data) for model, data in results["models"].items()}
    results["summary"] = summaries
    path = cfg.out / f"results-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print_report(results, summaries)
    print(f"\nresults: {path}")
    return 0


def compile_runtime() -> None:
    """Start every process with mlfn's bytecode compiled, as an installed wheel or an image has it.

    The project venv installs the runtime editable, from the working tree; with PYTHONDONTWRITEBYTECODE set
    (as on this machine) an edited module would be compiled again in every fresh interpreter, a cost no
    deployed image pays (pip compiles at install) and the alternatives' venvs never pay either.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(ROOT / "runtime_layer"), quiet=1)


def print_report(results: dict[str, Any], summaries: dict[str, Any]) -> None:
    print(f"mlfn benchmark {results['started']} (commit {results['commit']}), {results['cpus']} CPUs, load generator "
          f"{results['load_generator']} on core 0, servers on core 1, onnxruntime 1 intra-op thread, "
          f"{results['seconds']:.0f} s")
    print("load average (1/5/15 min) before: " + " ".join(f"{v:.2f}" for v in results["load_average_before"])
          + "  after: " + " ".join(f"{v:.2f}" for v in results["load_average_after"]))
    for label, why in results["skipped"].items():
        print(f"skipped {label}: {why}")
    for model, data in results["models"].items():
        for label, rounds in data["servers"].items():
            for measured in rounds:
                if "error" in measured:
                    print(f"error: {model}/{label}: {measured['error']}")
    print(report.tables(summaries))


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                              timeout=10)
        return done.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
