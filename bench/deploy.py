"""Wall time of `mlfn deploy --local` for a bundled model: first deploy, no-op redeploy, changed-model redeploy.

    .venv/bin/python bench/deploy.py [--model-dir functions/iris] [--rounds 3] [--json]

Each round uses a fresh MLFN_HOME (a cold emulator, no cached image layers or templates) and a copy of the model:
1. first deploy: starts the emulator (control plane + data plane), builds, probes, pushes, synthesizes, creates the
   stack, registers with the data plane; the emulator start is reported separately (`mlfn local start` first);
2. no-op redeploy of the unchanged folder (same digest, empty change set);
3. changed-model redeploy (mlfn.toml description edited: a new digest, a new function version, the alias moves).
Every command is the real CLI in a subprocess; the emulator is stopped after each round. Medians are printed.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def mlfn(env: dict[str, str], cwd: Path, *args: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mlfn.cli.main", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mlfn {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    try:
        return seconds, json.loads(done.stdout)
    except ValueError:
        return seconds, {}


def one_round(model_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mlfn-bench-deploy-") as tmp:
        work = Path(tmp)
        model = work / model_dir.name
        shutil.copytree(model_dir, model, ignore=shutil.ignore_patterns("__pycache__"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(MLFN_HOME=str(work / "home"), PYTHONUNBUFFERED="1")
        try:
            start_s, _ = mlfn(env, work, "local", "start", "--json")
            first_s, first = mlfn(env, work, "deploy", str(model), "--local", "--json")
            noop_s, noop = mlfn(env, work, "deploy", str(model), "--local", "--json")
            toml = model / "mlfn.toml"
            toml.write_text(toml.read_text().replace("description = \"", "description = \"(changed) ", 1))
            changed_s, changed = mlfn(env, work, "deploy", str(model), "--local", "--json")
            assert (first["status"], noop["status"], changed["status"]) == ("CREATED", "NO_CHANGES", "UPDATED")
        finally:
            subprocess.run([sys.executable, "-m", "mlfn.cli.main", "local", "stop"], env=env, cwd=work,
                           capture_output=True, timeout=120)
    return {"emulator_start_s": start_s, "first_deploy_s": first_s, "noop_redeploy_s": noop_s,
            "changed_redeploy_s": changed_s, "first_steps": first["seconds"], "changed_steps": changed["seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=str(ROOT / "functions" / "iris"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rounds = [one_round(Path(args.model_dir).resolve()) for _ in range(max(1, min(args.rounds, 10)))]
    keys = ("emulator_start_s", "first_deploy_s", "noop_redeploy_s", "changed_redeploy_s")
    summary = {k: statistics.median(r[k] for r in rounds) for k in keys}
    steps = {phase: {s: statistics.median(r[phase][s] for r in rounds) for s in rounds[0][phase]}
             for phase in ("first_steps", "changed_steps")}
    if args.json:
        print(json.dumps({"rounds": rounds, "median": summary, "median_steps": steps}, indent=2))
        return 0
    print(f"mlfn deploy --local of {Path(args.model_dir).name}, {len(rounds)} round(s), median wall time:")
    print(f"  emulator start (mlfn local start)      {summary['emulator_start_s']:6.1f} s")
    print(f"  first deploy                           {summary['first_deploy_s']:6.1f} s")
    print(f"  no-op redeploy (no changes)            {summary['noop_redeploy_s']:6.1f} s")
    print(f"  changed-model redeploy (new version)   {summary['changed_redeploy_s']:6.1f} s")
    for phase, label in (("first_steps", "first deploy"), ("changed_steps", "changed redeploy")):
        parts = ", ".join(f"{k} {v:.1f}" for k, v in steps[phase].items() if k != "total")
        print(f"  {label} steps (s): {parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
