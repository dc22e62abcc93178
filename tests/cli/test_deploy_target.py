"""`mlfn deploy --target`: the override replaces the model's own target in the spec every later step reads (image
flavour, stack, probe), after the same checks `mlfn synth --target` runs; a target that does not exist is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlfn.cli.deploy_flow import DeployRequest, validate
from mlfn.cli.packaging.base import flavour_for
from mlfn.runtime.errors import MlfnError

IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"


def model_with_target(tmp_path: Path, target: str) -> Path:
    folder = tmp_path / f"iris-{target}"
    shutil.copytree(IRIS, folder)
    toml = (folder / "mlfn.toml").read_text().replace('target = "lambda"', f'target = "{target}"')
    (folder / "mlfn.toml").write_text(toml)
    return folder


@pytest.mark.parametrize(("own", "override", "flavour"), [
    ("lambda", "sagemaker", "gpu"), ("lambda", "ecs", "gpu"), ("sagemaker", "lambda", "lambda"),
    ("sagemaker", "ecs", "gpu"), ("ecs", "lambda", "lambda"), ("ecs", "sagemaker", "gpu"),
    ("lambda", "lambda", "lambda"),
])
def test_target_override_is_the_target_every_step_reads(tmp_path: Path, own: str, override: str,
                                                        flavour: str) -> None:
    folder = model_with_target(tmp_path, own)
    spec, target, stage = validate(DeployRequest(folder, target=override))
    assert (target, spec.target, spec.settings.target, stage) == (override, override, override, "dev")
    assert flavour_for(spec) == flavour
    own_spec = validate(DeployRequest(folder))[0]
    assert (spec.name, spec.directory, spec.inputs) == ("iris", folder.resolve(), own_spec.inputs)


def test_override_still_runs_the_targets_checks(tmp_path: Path) -> None:
    folder = model_with_target(tmp_path, "sagemaker")
    (folder / "mlfn.toml").write_text((folder / "mlfn.toml").read_text().replace(
        'target = "sagemaker"', 'target = "sagemaker"\ngpu = true\n[sagemaker]\ninstance_type = "ml.g5.xlarge"'))
    with pytest.raises(MlfnError, match="Lambda has no GPUs"):
        validate(DeployRequest(folder, target="lambda"))


def test_unknown_target_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(MlfnError, match="unknown target 'fargate': expected one of lambda, sagemaker, ecs"):
        validate(DeployRequest(model_with_target(tmp_path, "lambda"), target="fargate"))


def test_unknown_target_on_the_command_line_is_one_clear_line(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "mlfn.cli.main", "deploy", str(IRIS), "--target", "fargate"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 2
    assert "argument --target: invalid choice: 'fargate' (choose from 'lambda', 'sagemaker', 'ecs')" in run.stderr
    assert "Traceback" not in run.stderr
