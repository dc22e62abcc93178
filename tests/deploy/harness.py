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


def shift_iris(model_dir: Path, delta: float = 0.8) -> None:
    """Change the iris model's answers: move its scaler's offsets (a new model, same signature)."""
    import onnx

    model = onnx.load(str(model_dir / "model.onnx"))
    scaler = next(n for n in model.graph.node if n.op_type == "Scaler")
    offset = next(a for a in scaler.attribute if a.name == "offset")
    values = [v + delta for v in offset.floats]
    del offset.floats[:]
    offset.floats.extend(values)
    onnx.save(model, str(model_dir / "model.onnx"))


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


class SignedLoad:
    """Signed HTTPS POSTs (botocore SigV4, service `lambda`, httpx) to a Function URL, one after another, until
    `stop` is set or `max_requests` were sent. `rows(i)` gives request i's instances; each answer is kept as
    (wall time, row index, status, predictions or error text); status 0 is a connection error."""

    def __init__(self, url: str, model: str, env: dict[str, str], ca: str, rows: Any, *,
                 max_requests: int = 3000) -> None:
        import ssl
        import threading

        from botocore.credentials import Credentials

        self.url = f"{url.rstrip('/')}/v1/models/{model}:predict"
        self.rows, self.max_requests = rows, max_requests
        self.credentials = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
        self.region = env.get("AWS_REGION", "us-east-1")
        self.tls = ssl.create_default_context(cafile=ca)
        self.answers: list[tuple[float, int, int, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        import httpx
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        with httpx.Client(verify=self.tls, timeout=30) as client:
            for i in range(self.max_requests):
                if self.stop.is_set():
                    return
                body = json.dumps({"instances": self.rows(i)}).encode()
                request = AWSRequest("POST", self.url, data=body, headers={"content-type": "application/json"})
                SigV4Auth(self.credentials, "lambda", self.region).add_auth(request)
                try:
                    answer = client.post(self.url, content=body, headers=dict(request.headers.items()))
                    got = answer.json().get("predictions") if answer.status_code == 200 else answer.text
                    self.answers.append((time.time(), i, answer.status_code, got))
                except httpx.HTTPError as exc:
                    self.answers.append((time.time(), i, 0, repr(exc)))

    def __enter__(self) -> SignedLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
