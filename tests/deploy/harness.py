"""Run the real `mlfn` command in subprocesses against an isolated MLFN_HOME, and make test model folders.

Shared by tests/deploy and tests/e2e (loaded by path: the test folders are not packages).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
COMMAND_TIMEOUT_S = 240
sys.path.insert(0, str(ROOT))

from bench.deploy_canary import SignedLoad, shift_iris  # noqa: E402 - the repository root must be importable first

__all__ = ["SignedLoad", "shift_iris"]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    """`mlfn ...` in a subprocess with MLFN_HOME=home, no AWS settings of the machine's, cwd `workdir`."""

    def __init__(self, home: Path, workdir: Path) -> None:
        self.home, self.workdir = home, workdir
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(MLFN_HOME=str(home), PYTHONUNBUFFERED="1", AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE=str(home / "no-aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-creds"))
        self.env = env

    def __call__(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT_S,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
        done = subprocess.run([sys.executable, "-m", "mlfn.cli.main", *args], cwd=cwd or self.workdir,
                              env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        run = Run(done.returncode, done.stdout, done.stderr)
        if check and run.code != 0:
            raise AssertionError(f"mlfn {' '.join(args)} exited {run.code}\nstdout:\n{run.stdout}\n"
                                 f"stderr:\n{run.stderr[-4000:]}")
        return run

    def stop_emulator(self) -> None:
        """`mlfn local stop`, then make sure no process of this emulator is left (even if stop failed)."""
        try:
            self("local", "stop", check=False, timeout=60)
        finally:
            kill_leftovers(self.home / "local")


@contextlib.contextmanager
def started_emulator(root: Path, alarm_time_scale: float) -> Any:
    """`mlfn local start` in an isolated home under `root`, its alarms at `alarm_time_scale` (wall seconds per AWS
    second); yields its status plus `env` (boto3 to its control plane), `cli` and `root`; stopped at the end."""
    from mlfn.cli.local.control_plane import client_environment

    runner = Cli(root / "home", root)
    runner.env["MLFN_ALARM_TIME_SCALE"] = str(alarm_time_scale)
    try:
        info = runner("local", "start", "--json").json()
        yield {**info, "env": client_environment(info["control_plane"]), "cli": runner, "root": root}
    finally:
        runner.stop_emulator()


def kill_leftovers(state: Path) -> None:
    pids = []
    for name in ("control-plane.json", "data-plane/admin.json"):
        try:
            pids.append(int(json.loads((state / name).read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            continue
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def copy_model(source: Path, dest: Path, *, name: str | None = None, target: str | None = None,
               extra_toml: str = "") -> Path:
    """A copy of a bundled model folder with another name/target and extra mlfn.toml lines."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
    toml = (dest / "mlfn.toml").read_text()
    if name:
        toml = toml.replace(f'name = "{source.name}"', f'name = "{name}"')
    if target:
        toml = toml.replace('target = "lambda"', f'target = "{target}"')
    head, sep, rest = toml.partition("\n[")
    (dest / "mlfn.toml").write_text(head.rstrip("\n") + "\n" + extra_toml + ("\n" + sep.lstrip("\n") + rest
                                                                             if sep else ""))
    return dest


def onnxruntime_answer(model_dir: Path, rows: list[list[float]]) -> list[dict[str, Any]]:
    """What onnxruntime itself says for iris rows: label and probabilities per row."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {session.get_inputs()[0].name: np.array(rows, dtype=np.float32)})
    return [{"output_label": str(label), "output_probability": {k: float(v) for k, v in p.items()}}
            for label, p in zip(labels, probabilities, strict=True)]


def same_predictions(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    if [g["output_label"] for g in got] != [w["output_label"] for w in want]:
        return False
    return all(abs(g["output_probability"][k] - w["output_probability"][k]) < 1e-5
               for g, w in zip(got, want, strict=True) for k in w["output_probability"])


def wait_until(predicate: Any, timeout_s: float = 20, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)

