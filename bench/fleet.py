"""Growth of a fleet deploy with its size, against the local emulator: `mlfn deploy FOLDER --local` of N generated
models (copies of functions/iris with distinct names), for each N of --counts.

    .venv/bin/python bench/fleet.py [--counts 1,10,30] [--json]

For each N, a fresh MLFN_HOME (cold emulator, no cached images or templates):
1. first deploy of the folder (every model built, probed, pushed, one shared synth, N stacks created);
2. no-op redeploy (nothing changed: every model reported unchanged);
3. one-changed redeploy (one model's mlfn.toml description edited: one new image, one synth, one stack update);
4. emulator memory (PSS of the control plane, data plane and their children) with N idle models, then after one
   call to each model (N warm sandboxes).
Then synth alone, in-process (`mlfn.infra.synth.synth_models`, one app run): 1 stack against the largest N, giving
the synth time per extra model. Every deploy is the real CLI in a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "functions" / "iris"
FAKE_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfn-{name}@sha256:" + "ab" * 32


def generate(root: Path, count: int) -> list[Path]:
    folders = []
    for i in range(count):
        name = f"m{i:03d}"
        dest = root / name
        shutil.copytree(IRIS, dest, ignore=shutil.ignore_patterns("__pycache__"))
        toml = dest / "mlfn.toml"
        toml.write_text(toml.read_text().replace('name = "iris"', f'name = "{name}"'))
        folders.append(dest)
    return folders


def mlfn(env: dict[str, str], cwd: Path, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[float, Any]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mlfn.cli.main", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode not in ok:
        raise SystemExit(f"mlfn {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    try:
        return seconds, json.loads(done.stdout)
    except ValueError:
        return seconds, {}


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = int(next(line for line in status.read_text().splitlines() if line.startswith("PPid:")).split()[1])
        except (OSError, StopIteration, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(status.parent.name))
    return tree


def _pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))


def emulator_memory_mb(state: Path) -> tuple[float, int]:
    """PSS (MB) of the emulator's processes and all their descendants, and how many processes that is."""
    roots = []
    for name in ("control-plane.json", "data-plane/admin.json"):
        try:
            roots.append(int(json.loads((state / name).read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            continue
    tree, seen, stack = _children(), set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(tree.get(pid, []))
    return sum(_pss_kb(pid) for pid in seen) / 1024, len(seen)


def one_size(count: int) -> dict[str, Any]:
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    with tempfile.TemporaryDirectory(prefix="mlfn-bench-fleet-") as tmp:
        work = Path(tmp)
        folders = generate(work / "functions", count)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(MLFN_HOME=str(work / "home"), PYTHONUNBUFFERED="1")
        fleet = str(work / "functions")
        try:
            mlfn(env, work, "local", "start", "--json")
            first_s, first = mlfn(env, work, "deploy", fleet, "--local", "--json")
            noop_s, noop = mlfn(env, work, "deploy", fleet, "--local", "--json")
            toml = folders[count // 2] / "mlfn.toml"
            toml.write_text(toml.read_text().replace("description = \"", "description = \"(changed) ", 1))
            changed_s, changed = mlfn(env, work, "deploy", fleet, "--local", "--json")
            results = [sorted({r["result"] for r in doc["models"]}) for doc in (first, noop, changed)]
            assert results[0] == ["deployed"] and results[1] == ["unchanged"], results
            idle_mb, idle_procs = emulator_memory_mb(work / "home" / "local")
            data = str(IRIS / "example.json")
            for folder in folders:
                mlfn(env, work, "invoke", folder.name, "--local", "--data", f"@{data}")
            warm_mb, warm_procs = emulator_memory_mb(work / "home" / "local")
        finally:
            subprocess.run([sys.executable, "-m", "mlfn.cli.main", "local", "stop"], env=env, cwd=work,
                           capture_output=True, timeout=300)
    return {"models": count, "first_deploy_s": first_s, "noop_redeploy_s": noop_s, "one_changed_redeploy_s": changed_s,
            "first_synth_s": first["synth_seconds"], "changed_synth_s": changed["synth_seconds"],
            "changed_results": sorted(r["result"] for r in changed["models"]),
            "idle_memory_mb": idle_mb, "idle_processes": idle_procs, "warm_memory_mb": warm_mb,
            "warm_processes": warm_procs, "noop_steps_median_s": median_steps(noop), "load_before": load_before,
            "load_after": os.getloadavg()[0]}


def median_steps(doc: dict[str, Any]) -> dict[str, float]:
    """Per deploy step, the median over the models of a fleet run (which step a no-op spends its time in)."""
    import statistics

    rows = [r["steps"] for r in doc["models"] if r.get("steps")]
    return {k: round(statistics.median(r.get(k, 0.0) for r in rows), 3) for k in (rows[0] if rows else {})}


SYNTH_CHILD = """
import json, sys, time, tempfile
from mlfn.infra.synth import synth_models
models = json.loads(sys.argv[1])
started = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    synth_models(models, outdir=out)
print(time.perf_counter() - started)
"""


def synth_growth(count: int) -> dict[str, float]:
    """In-process synth of 1 stack and of `count` stacks, each in a fresh interpreter (jsii started each time)."""
    with tempfile.TemporaryDirectory(prefix="mlfn-bench-synth-") as tmp:
        folders = generate(Path(tmp), count)
        times = {}
        for n in (1, count):
            models = [{"model_dir": str(f), "image_uri": FAKE_IMAGE.format(name=f.name)} for f in folders[:n]]
            done = subprocess.run([sys.executable, "-c", SYNTH_CHILD, json.dumps(models)], capture_output=True,
                                  text=True, timeout=1800, check=True)
            times[n] = float(done.stdout.strip().splitlines()[-1])
    per_extra = (times[count] - times[1]) / (count - 1) if count > 1 else 0.0
    return {"one_stack_s": times[1], f"{count}_stacks_s": times[count], "per_extra_model_s": per_extra,
            "per_extra_over_one": per_extra / times[1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,10,30", help="fleet sizes, comma-separated (default 1,10,30)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    if not counts or min(counts) < 1 or max(counts) > 100:
        raise SystemExit(f"--counts {args.counts}: expected sizes from 1 to 100")
    sizes = []
    for count in counts:
        sizes.append(one_size(count))
        print(json.dumps(sizes[-1]), file=sys.stderr, flush=True)
    synth = synth_growth(max(counts))
    if args.json:
        print(json.dumps({"sizes": sizes, "synth": synth}, indent=2))
        return 0
    print(f"{'models':>6} {'first':>8} {'no-op':>8} {'1 changed':>10} {'synth(first)':>13} {'idle MB':>8} "
          f"{'warm MB':>8}")
    for s in sizes:
        print(f"{s['models']:>6} {s['first_deploy_s']:>7.1f}s {s['noop_redeploy_s']:>7.1f}s "
              f"{s['one_changed_redeploy_s']:>9.1f}s {s['first_synth_s']:>12.1f}s {s['idle_memory_mb']:>8.0f} "
              f"{s['warm_memory_mb']:>8.0f}")
    print(f"synth in one app: 1 stack {synth['one_stack_s']:.1f}s; per extra model {synth['per_extra_model_s']:.2f}s "
          f"({synth['per_extra_over_one']:.3f} of one)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
