"""Fixtures for the packaging tests: a real model folder, a moto server over HTTP, and Debian's docker-registry."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlfn.cli.local.processes import stop


@pytest.fixture(scope="session")
def iris_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    onx = to_onnx(model, x[:1].astype(np.float32), target_opset=17, options={"zipmap": False})
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.fixture
def iris_dir(tmp_path: Path, iris_onnx: Path) -> Path:
    """A model folder named `iris` holding the model, an mlfn.toml and a hooks file."""
    d = tmp_path / "src" / "iris"
    d.mkdir(parents=True)
    shutil.copy(iris_onnx, d / "model.onnx")
    (d / "mlfn.toml").write_text('description = "iris classifier"\n')
    (d / "labels.txt").write_text("setosa\nversicolor\nvirginica\n")
    return d


@pytest.fixture
def mlfn_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MLFN_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on 127.0.0.1 (any free port) whose Lambda checks image URIs against its ECR."""
    os.environ["MOTO_LAMBDA_STUB_ECR"] = "false"  # read by moto when a function is created; set before start
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_endpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not path:
        pytest.skip(f"{name} is not installed: run .ci/setup-images.sh (Debian package {name})")
    return path


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1, storing under a temp folder."""
    binary = _binary("docker-registry")
    root = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: " + str(root / "data")
        + "\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:" + str(port) + "\n"
    )
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    url = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://{url}/v2/", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log_text = (root / "registry.log").read_text()
                    raise RuntimeError(f"docker-registry did not start: {log_text}") from None
                time.sleep(0.1)
        yield url
    finally:
        stop(proc, timeout_s=10)
        log.close()


@pytest.fixture(scope="session")
def skopeo() -> str:
    return _binary("skopeo")


@pytest.fixture(scope="session")
def umoci() -> str:
    return _binary("umoci")
