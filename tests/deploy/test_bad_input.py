"""Bad input to `mlfn deploy` (and friends): one line on stderr, a non-zero exit, and nothing created - no emulator
started, no image built, no stack."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"


def assert_one_line_refusal(run: Any, *needles: str) -> None:
    assert run.code != 0
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def assert_nothing_created(home: Path) -> None:
    assert not (home / "local").exists()  # no emulator was started
    assert not (home / "images").exists()  # no image was built


def test_not_a_model_directory(fresh_cli: Any, tmp_path: Path) -> None:
    run = fresh_cli("deploy", str(tmp_path / "nowhere"), "--local", check=False)
    assert_one_line_refusal(run, "nowhere", "not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    run = fresh_cli("deploy", str(empty), "--local", check=False)
    assert_one_line_refusal(run, "model.onnx")
    assert_nothing_created(fresh_cli.home)


def test_unknown_stage(fresh_cli: Any) -> None:
    run = fresh_cli("deploy", str(IRIS), "--stage", "qa", "--local", check=False)
    assert_one_line_refusal(run, "'qa'", "dev, prod", "stages")
    assert_nothing_created(fresh_cli.home)


def test_gpu_model_on_lambda(fresh_cli: Any, h: Any, tmp_path: Path) -> None:
    model = h.copy_model(IRIS, tmp_path / "gpu-iris", name="gpu-iris", extra_toml="gpu = true\n")
    run = fresh_cli("deploy", str(model), "--local", check=False)
    assert_one_line_refusal(run, "gpu", "Lambda has no GPUs")
    assert_nothing_created(fresh_cli.home)


def test_model_too_large_for_lambda(fresh_cli: Any, h: Any, tmp_path: Path) -> None:
    model = h.copy_model(IRIS, tmp_path / "big-iris", name="big-iris")
    with (model / "weights.bin").open("wb") as sparse:  # 9.5 GiB on paper, no disk used
        sparse.truncate(int(9.5 * 1024**3))
    run = fresh_cli("deploy", str(model), "--local", check=False)
    assert_one_line_refusal(run, "10 GiB", "sagemaker or ecs")
    assert_nothing_created(fresh_cli.home)


def test_unknown_target(fresh_cli: Any) -> None:
    run = fresh_cli("deploy", str(IRIS), "--target", "ec2", check=False)
    assert run.code == 2 and "invalid choice: 'ec2'" in run.stderr


def test_missing_region_then_missing_credentials_against_aws(fresh_cli: Any) -> None:
    run = fresh_cli("deploy", str(IRIS), check=False)
    assert_one_line_refusal(run, "no AWS region", "--region")
    run = fresh_cli("deploy", str(IRIS), "--region", "eu-west-1", check=False)
    assert_one_line_refusal(run, "no AWS credentials", "aws configure")
    assert_nothing_created(fresh_cli.home)


@pytest.mark.parametrize("command", [["invoke", "iris", "--data", "{}"], ["status", "iris"], ["list"],
                                     ["logs", "iris"], ["destroy", "iris", "--yes"]])
def test_commands_need_the_emulator_running_for_local(fresh_cli: Any, command: list[str]) -> None:
    run = fresh_cli(*command, "--local", check=False)
    assert_one_line_refusal(run, "local emulator is not running", "mlfn local start")
    assert not (fresh_cli.home / "local" / "control-plane.json").exists()


def test_bad_data_file_is_one_line(fresh_cli: Any) -> None:
    run = fresh_cli("invoke", "iris", "--local", "--data", "@/no/such/file.json", check=False)
    assert_one_line_refusal(run, "no such file")


def test_local_status_when_stopped(fresh_cli: Any) -> None:
    run = fresh_cli("local", "status", "--json", check=False)
    assert run.code == 3 and run.json()["running"] is False
    assert fresh_cli("local", "stop").stdout.strip() == "not running"


def test_no_aws_environment_leaks_into_these_runs(fresh_cli: Any) -> None:
    assert not any(k.startswith("AWS_ACCESS") for k in fresh_cli.env)
    assert os.environ.get("MLFN_HOME") != fresh_cli.env["MLFN_HOME"]


def test_model_only_image_is_refused_for_aws(fresh_cli: Any) -> None:
    """No runtime base here (no `mlfn runtime build`, no descriptor): AWS could not run the image."""
    env = {"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # never reached: nothing may be called
    run = fresh_cli("deploy", str(IRIS), env=env, check=False)
    assert_one_line_refusal(run, "no runtime base", "mlfn runtime build --flavour lambda", "--local")
    assert_nothing_created(fresh_cli.home)
