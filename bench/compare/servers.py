"""The servers under test: how each starts, where it answers, and measuring one process tree (spawn, RSS, stop).

Every server runs pinned to core 1 (`taskset -c 1`, inherited by its worker processes) with onnxruntime on one
intra-op thread, binds 127.0.0.1 on a port picked free just before, and is stopped with SIGTERM (then SIGKILL)
on its whole process group.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
ALTERNATIVES = Path(__file__).resolve().parent / "alternatives"
SERVER_CORE = "1"
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ServerKind:
    """One framework: its label, the venv it needs (None: the project's), and its request route."""

    label: str
    venv: str | None

    def predict_path(self, model_name: str) -> str:
        return "/predict" if self.label == "bentoml" else f"/v1/models/{model_name}:predict"

    def argv(self, python: Path, model_dir: Path, port: int) -> list[str]:
        if self.label == "mlfn":
            return [str(python), "-m", "mlfn.runtime.server", "serve", "--model-dir", str(model_dir),
                    "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        if self.label == "fastapi":
            return [str(python), str(ALTERNATIVES / "fastapi_app.py"), str(model_dir), str(port)]
        if self.label == "kserve":
            return [str(python), str(ALTERNATIVES / "kserve_model.py"), str(model_dir), str(port)]
        if self.label == "bentoml":
            return [str(python), "-m", "bentoml", "serve", "bentoml_service:OnnxService", "--host", "127.0.0.1",
                    "--port", str(port)]
        raise ValueError(self.label)


KINDS = {kind.label: kind for kind in (ServerKind("mlfn", None), ServerKind("fastapi", "fastapi"),
                                       ServerKind("kserve", "kserve"), ServerKind("bentoml", "bentoml"))}


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def post(port: int, path: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"content-type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class RunningServer:
    """A server process group started now; `cold_start_s` is spawn to the first 200 on a predict request."""

    def __init__(self, kind: ServerKind, python: Path, model_dir: Path, model_name: str, body: bytes,
                 log: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.path = kind.predict_path(model_name)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "BENCH_MODEL_DIR": str(model_dir),
               "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(log.parent / "bentoml-home"),
               "PYTHONPATH": str(ROOT)}
        self._log = log.open("ab")
        started = time.perf_counter()
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, *kind.argv(python, model_dir, self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                     cwd=ALTERNATIVES if kind.label == "bentoml" else ROOT)
        self.cold_start_s = self._first_200(body, started)

    def _first_200(self, body: bytes, started: float) -> float:
        deadline = started + START_TIMEOUT_S
        last = "no answer"
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.kind.label} exited with {self.proc.returncode} before answering; "
                                   f"see {self._log.name}")
            try:
                status, payload = post(self.port, self.path, body, timeout=30)
                if status == 200:
                    return time.perf_counter() - started
                last = f"{status} {payload[:200]!r}"
            except OSError:
                pass
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"{self.kind.label} gave no 200 within {START_TIMEOUT_S:.0f} s (last: {last}); "
                           f"see {self._log.name}")

    def tree_rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident memory in MB summed over the server's processes (VmRSS, VmHWM)."""
        current = peak = 0
        for pid in _tree(self.proc.pid):
            fields = _status(pid)
            current += fields.get("VmRSS", 0)
            peak += fields.get("VmHWM", 0)
        return current / 1024, peak / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        # workers that outlived their parent (same process group): end them too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


def _tree(root: int) -> list[int]:
    """`root` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/status."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[key] = int(value.split()[0])
    return fields
