"""Fixtures of the serving tests: small real ONNX models in temporary folders, and real servers running them.

Every server is the real entry point (`python -m mlfn.runtime.server serve`) in a subprocess bound to
127.0.0.1 port 0; the fixture reads the port from its log, waits for readiness, and stops it with SIGTERM
at the end (asserting a clean exit).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT_S = 60.0


def write_model(directory: Path, graph: onnx.GraphProto, toml: str = "") -> Path:
    """A model directory holding `model.onnx` (opset 17) and an optional `mlfn.toml`."""
    directory.mkdir(parents=True, exist_ok=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlfn-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(directory / "model.onnx"))
    if toml:
        (directory / "mlfn.toml").write_text(toml, encoding="utf-8")
    return directory


def doubler_graph() -> onnx.GraphProto:
    """y = 2 * x for x float32[batch, 4]."""
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    return helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])], "doubler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[two],
    )


def failing_graph() -> onnx.GraphProto:
    """Reshape x float32[batch, 4] to [3, -1]: runs for 3 rows, fails inside onnxruntime for 1 or 2."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [3, -1])
    return helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "failing",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, "n"])],
        initializer=[shape],
    )


def tiling_graph(repeats: int) -> onnx.GraphProto:
    """y = x tiled `repeats` times along its second axis: a small request with a large answer."""
    reps = helper.make_tensor("reps", TensorProto.INT64, [2], [1, repeats])
    return helper.make_graph(
        [helper.make_node("Tile", ["x", "reps"], ["y"])], "tiling",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])],
        initializer=[reps],
    )


class Server:
    """A server subprocess: its base URL, its log lines so far, and how to stop it."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.lines: list[str] = []
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("MLFN_PORT", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlfn.runtime.server", "serve", "--model-dir", str(model_dir),
             "--host", "127.0.0.1", "--port", "0"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = self._wait_for_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = LISTENING.search(line)
                if found:
                    return int(found.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.proc.kill()
        raise AssertionError(f"server did not start:\n{self.log}")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                if client.get("/v2/health/ready").status_code == 200:
                    return
                assert self.proc.poll() is None, f"server exited:\n{self.log}"
                time.sleep(0.05)
        raise AssertionError(f"server never became ready:\n{self.log}")

    def stop(self) -> int:
        """SIGTERM, as SageMaker and ECS send it; the exit code (a kill after 30 s counts as failure)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return -9
        self._reader.join(5)
        return self.proc.returncode


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "doubler": write_model(root / "doubler", doubler_graph(),
                               'name = "doubler"\n[server]\nmax_body_bytes = 4096\n'),
        "failing": write_model(root / "failing", failing_graph(), 'name = "failing"\n'),
        "tiling": write_model(root / "tiling", tiling_graph(500_000), 'name = "tiling"\n'),
        "iris": FUNCTIONS / "iris",
        "digits": FUNCTIONS / "digits",
    }


@pytest.fixture(scope="session")
def servers(models: dict[str, Path]) -> Iterator[Callable[[str], Server]]:
    """Start the server of a model (by its name in `models`) on first use; stop them all at the end."""
    started: dict[str, Server] = {}

    def server_for(name: str) -> Server:
        if name not in started:
            started[name] = Server(models[name])
            started[name].wait_ready()
        return started[name]

    yield server_for
    codes = {name: server.stop() for name, server in started.items()}
    unclean = {name: code for name, code in codes.items() if code != 0}
    assert not unclean, f"servers did not stop cleanly on SIGTERM: {unclean}\n" + "\n".join(
        started[name].log for name in unclean)


@pytest.fixture(scope="session")
def doubler_server(servers: Callable[[str], Server]) -> Server:
    return servers("doubler")


@pytest.fixture(scope="session")
def failing_server(servers: Callable[[str], Server]) -> Server:
    return servers("failing")


@pytest.fixture(scope="session")
def iris_server(servers: Callable[[str], Server]) -> Server:
    return servers("iris")


@pytest.fixture(scope="session")
def digits_server(servers: Callable[[str], Server]) -> Server:
    return servers("digits")


@pytest.fixture()
def doubler(doubler_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=doubler_server.url, timeout=30) as client:
        yield client


@pytest.fixture()
def iris(iris_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=iris_server.url, timeout=30) as client:
        yield client


@contextlib.contextmanager
def app_in_thread(app: Any) -> Iterator[httpx.Client]:
    """An ASGI app under a real uvicorn server in a thread on 127.0.0.1 (port 0), and a client for it."""
    import uvicorn

    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Environment variables set while the block runs (a server started in it inherits them), then restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ort_run(model_dir: Path, feeds: dict[str, np.ndarray]) -> list[object]:
    """The same model run directly by onnxruntime: what the served answer must equal."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))
