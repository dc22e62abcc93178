"""The image actually runs: a runtime base built here (debootstrap, no Docker) plus the model layer, unpacked by
umoci, its entrypoint started in a chroot as root, answers a prediction. Both flavours: the container flavour
serves HTTP (`serve`), the Lambda flavour runs awslambdaric against a Runtime API on 127.0.0.1.

Slow (a cold run builds two bases: about 2 to 4 minutes): `.ci/image-smoke.sh` runs it, or
`pytest -m slow tests/packaging/test_image_runs.py`. MLFN_SMOKE_HOME keeps the debootstrap cache between runs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mlfn.cli.local.processes import stop

from .helpers import mlfn_json, run
from .lambda_runtime_stub import REQUEST_ID, RuntimeApiStub

pytestmark = pytest.mark.slow
FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
EXAMPLE = {"instances": [[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]]}


@pytest.fixture(scope="module")
def smoke_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the image smoke test needs root (debootstrap, chroot, mount)")
    for tool in ("debootstrap", "umoci", "chroot", "mount"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed: run .ci/setup-images.sh")
    return Path(os.environ.get("MLFN_SMOKE_HOME") or tmp_path_factory.mktemp("smoke-home"))


def _model_dir(tmp_path: Path, target: str) -> Path:
    d = tmp_path / "iris"
    shutil.copytree(FUNCTIONS / "iris", d)
    toml = d / "mlfn.toml"
    toml.write_text(toml.read_text().replace('target = "lambda"', f'target = "{target}"'))
    return d


def _image_env(config: dict[str, Any], **extra: str) -> dict[str, str]:
    env = dict(e.split("=", 1) for e in config["config"]["Env"])
    return {**env, **extra}


DEVICES = {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}


@contextmanager
def _unpacked(layout: str, ref: str, bundle: Path) -> Iterator[Path]:
    """The image's root filesystem with /proc mounted and a few device nodes made in /dev (never a bind mount
    of the host's /dev: a cleanup that deleted the tree would then delete the host's devices)."""
    run("umoci", "unpack", "--image", f"{layout}:{ref}", str(bundle))
    rootfs = bundle / "rootfs"
    for name, (major, minor) in DEVICES.items():
        os.mknod(rootfs / "dev" / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
    run("mount", "-t", "proc", "proc", str(rootfs / "proc"))
    try:
        yield rootfs
    finally:
        subprocess.run(["umount", str(rootfs / "proc")], check=False)


@contextmanager
def _started(rootfs: Path, argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(["chroot", str(rootfs), *argv], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            stop(proc, timeout_s=15)


def _build(capsys: Any, smoke_home: Path, monkeypatch: pytest.MonkeyPatch, model: Path, flavour: str) -> dict[str, Any]:
    monkeypatch.setenv("MLFN_HOME", str(smoke_home))
    base = mlfn_json(capsys, "runtime", "build", "--flavour", flavour)
    built = mlfn_json(capsys, "build", str(model))
    assert built["base"]["digest"] == base["digest"] and built["flavour"] == flavour
    return built


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ping(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:  # refused, reset, or timed out while the server still imports its web stack
            pass
        assert time.monotonic() < deadline, "no answer on /ping within 60 s"
        time.sleep(0.25)


def test_container_flavour_serves_a_prediction(smoke_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    built = _build(capsys, smoke_home, monkeypatch, _model_dir(tmp_path, "sagemaker"), "gpu")
    config = json.loads(Path(built["layout"], "blobs", "sha256", _config_hex(built)).read_bytes())
    port = _free_port()
    argv = [*config["config"]["Entrypoint"], *config["config"]["Cmd"], "--host", "127.0.0.1"]
    env = _image_env(config, MLFN_PORT=str(port))
    with _unpacked(built["layout"], built["ref"], tmp_path / "bundle") as rootfs, \
            _started(rootfs, argv, env, tmp_path / "serve.log") as proc:
        _wait_ping(proc, port, tmp_path / "serve.log")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(EXAMPLE).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
    assert [p["output_label"] for p in answer["predictions"]] == ["setosa", "virginica"]


def test_hooks_import_their_own_packages_in_the_image(smoke_home: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """functions/digits (Pillow from its requirements.txt, a manylinux wheel in the image's own layer) reads a PNG
    in the image's Python 3.11 on the bookworm base, not this machine's."""
    model = tmp_path / "digits"
    shutil.copytree(FUNCTIONS / "digits", model)
    (model / "mlfn.toml").write_text((model / "mlfn.toml").read_text().replace('target = "lambda"',
                                                                               'target = "sagemaker"'))
    built = _build(capsys, smoke_home, monkeypatch, model, "gpu")
    assert [p["name"] for p in built["dependencies"]["packages"]] == ["pillow"]
    config = json.loads(Path(built["layout"], "blobs", "sha256", _config_hex(built)).read_bytes())
    port = _free_port()
    argv = [*config["config"]["Entrypoint"], *config["config"]["Cmd"], "--host", "127.0.0.1"]
    with _unpacked(built["layout"], built["ref"], tmp_path / "bundle") as rootfs, \
            _started(rootfs, argv, _image_env(config, MLFN_PORT=str(port)), tmp_path / "serve.log") as proc:
        assert not (rootfs / "usr/lib/python3/dist-packages/PIL").exists()
        _wait_ping(proc, port, tmp_path / "serve.log")
        png = (FUNCTIONS / "digits" / "examples" / "3.png").read_bytes()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=png,
                                     headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
    assert answer["predictions"][0]["digit"] == 3


def test_lambda_flavour_answers_through_the_runtime_api(smoke_home: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    built = _build(capsys, smoke_home, monkeypatch, _model_dir(tmp_path, "lambda"), "lambda")
    config = json.loads(Path(built["layout"], "blobs", "sha256", _config_hex(built)).read_bytes())
    argv = [*config["config"]["Entrypoint"], *config["config"]["Cmd"]]
    assert argv[-1] == "mlfn.runtime.lambda_handler.handler"
    with RuntimeApiStub(EXAMPLE) as api, _unpacked(built["layout"], built["ref"], tmp_path / "bundle") as rootfs:
        env = _image_env(config, AWS_LAMBDA_RUNTIME_API=api.address, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
                         AWS_LAMBDA_FUNCTION_NAME="iris", AWS_REGION="us-east-1")
        with _started(rootfs, argv, env, tmp_path / "lambda.log") as proc:
            deadline = time.monotonic() + 60
            while not api.answered.wait(0.5):
                assert proc.poll() is None, (tmp_path / "lambda.log").read_text()
                assert time.monotonic() < deadline, "no answer from the handler within 60 s"
    assert api.answer is not None and api.answer["path"].endswith(f"/invocation/{REQUEST_ID}/response"), api.answer
    assert [p["output_label"] for p in api.answer["body"]["predictions"]] == ["setosa", "virginica"]


def _config_hex(built: dict[str, Any]) -> str:
    manifest = json.loads(Path(built["layout"], "blobs", "sha256", built["digest"].split(":")[1]).read_bytes())
    return str(manifest["config"]["digest"].split(":")[1])
