"""`mlfn runtime`: builder choice and clear errors, without building a base (the slow tier builds one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfn.cli.main import main
from mlfn.cli.packaging import dockerfile_build
from mlfn.cli.packaging.offline_base import OfflineBuildError, pinned


def test_docker_builder_without_an_engine_is_a_clear_error(mlfn_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(dockerfile_build, "docker_available", lambda: False)  # no engine can answer here anyway
    assert main(["runtime", "build", "--flavour", "lambda", "--builder", "docker"]) == 2
    assert "no Docker engine answers here" in capsys.readouterr().err


def test_publish_without_a_local_base_says_what_to_run(mlfn_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runtime", "publish", "--flavour", "gpu", "--to", "127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert "mlfn runtime build --flavour gpu" in err and "Traceback" not in err


def test_build_context_holds_the_pins_and_the_wheel(repo_root: Path, tmp_path: Path) -> None:
    context = dockerfile_build.build_context("gpu", tmp_path, lambda _: None)
    assert (context / "Dockerfile").read_text().startswith("# The mlfn runtime base for SageMaker and ECS on GPU")
    # onnxruntime-gpu has its own pin (its releases lag the CPU build's on PyPI), shipped with the Dockerfiles
    gpu_pin = pinned(repo_root / "runtime_layer" / "images" / "onnxruntime-gpu.txt", "onnxruntime-gpu")
    assert (context / "onnxruntime-gpu.txt").read_text().strip() == gpu_pin
    assert [w.name.split("-")[0] for w in (context / "wheels").glob("*.whl")] == ["mlfn"]
    with pytest.raises(OfflineBuildError, match="no pin for nothing"):
        pinned(repo_root / "runtime_layer" / "requirements.txt", "nothing")
