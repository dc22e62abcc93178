"""`mlfn synth` and the CDK app `cdk.json` runs, as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ROOT

MakeDir = Callable[[str, str], Path]
MLFN = [sys.executable, "-m", "mlfn.cli.main"]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, check=False)


def test_cdk_json_carries_the_init_feature_flags_and_runs_the_app() -> None:
    cdk_json = json.loads((ROOT / "cdk.json").read_text())
    flags = json.loads((ROOT / "infra" / "cdk_flags.json").read_text())
    assert len(flags) > 50
    assert {k: cdk_json["context"].get(k) for k in flags} == flags
    assert "-m mlfn.infra.app" in cdk_json["app"]


def test_mlfn_synth_writes_a_checked_template(make_model_dir: MakeDir, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # In-process (the CLI's own main) so it shares the session's jsii process; the refusals below are subprocesses.
    from mlfn.cli.main import main

    model = make_model_dir("cli-serverless", 'target = "sagemaker"\n[sagemaker]\nserverless = true\n')
    assert main(["synth", str(model), "--out", str(tmp_path / "out"), "--stage", "prod", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["stack"] == "mlfn-cli-serverless-prod" and payload["target"] == "sagemaker"
    template = json.loads(Path(payload["template"]).read_text())
    assert {"InvokeUrl", "AuthType", "Target", "EndpointName"} <= set(template["Outputs"])
    assert payload["resources"] == len(template["Resources"])


@pytest.mark.parametrize(("toml", "args", "message"), [
    ('target = "lambda"\ngpu = true\n', [], "mlfn.toml: gpu: expected target sagemaker or ecs"),
    ('target = "sagemaker"\n[sagemaker]\ninstance_type = "ml.x9.large"\n', [], "sagemaker.instance_type"),
    ('gpu = true\ntarget = "ecs"\n', ["--target", "lambda"], "Lambda has no GPUs"),
    ("", ["--stage", "qa"], "stage 'qa' is not one of"),
    ("", ["--image", "python:3.12"], "is not an ECR image"),
])
def test_mlfn_synth_refuses_bad_input_in_one_line(make_model_dir: MakeDir, tmp_path: Path, toml: str,
                                                  args: list[str], message: str) -> None:
    model = make_model_dir(f"bad-{abs(hash((toml, *args))) % 10**6}", toml)
    proc = _run([*MLFN, "synth", str(model), *args], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlfn synth: error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "cdk.out").exists()


def test_app_fails_in_one_line_on_a_bad_model(make_model_dir: MakeDir, tmp_path: Path) -> None:
    functions = tmp_path / "functions"
    functions.mkdir()
    bad = make_model_dir("app-bad", '[lambda]\nmemory_mb = 64\n')
    bad.rename(functions / "app-bad")
    proc = _run([sys.executable, "-m", "mlfn.infra.app"], tmp_path, {"CDK_OUTDIR": str(tmp_path / "out")})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "mlfn synth: error: functions/app-bad: mlfn.toml: lambda.memory_mb: expected a value from 128 to 10240, got 64")


@pytest.mark.slow
def test_app_synthesizes_every_model_folder(make_model_dir: MakeDir, tmp_path: Path) -> None:
    functions = tmp_path / "functions"
    functions.mkdir()
    for name, toml in (("app-a", ""), ("app-b", 'target = "sagemaker"\n'), ("app-c", 'stages = ["prod"]\n')):
        make_model_dir(name, toml).rename(functions / name)
    (functions / "notes").mkdir()  # no model.onnx or mlfn.toml: not a model
    proc = _run([sys.executable, "-m", "mlfn.infra.app"], tmp_path, {"CDK_OUTDIR": str(tmp_path / "out")})
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.template.json")) == [
        "mlfn-app-a-dev.template.json", "mlfn-app-b-dev.template.json"]
    assert "skipping app-c: stage 'dev' is not in its stages" in proc.stderr
