"""`mlfn validate` run as a user runs it: a subprocess, one line and exit 2 on a bad directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def mlfn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlfn.cli.main", *args], capture_output=True, text=True, timeout=60)


def test_valid_directory_prints_its_signature() -> None:
    done = mlfn("validate", str(FUNCTIONS / "iris"), "--json")
    assert done.returncode == 0, done.stderr
    signature = json.loads(done.stdout)
    assert signature["name"] == "iris"
    assert [i["name"] for i in signature["inputs"]] == ["input"]
    assert signature["load_ms"] > 0


def test_hooks_that_fail_to_import_are_refused(tmp_path: Path) -> None:
    directory = tmp_path / "digits"
    shutil.copytree(FUNCTIONS / "digits", directory)
    (directory / "hooks.py").write_text("import not_a_module_anywhere\n")
    done = mlfn("validate", str(directory), "--quick")
    assert done.returncode == 2
    assert "hooks.py" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_corrupt_model_is_one_line_and_exit_2(tmp_path: Path) -> None:
    directory = tmp_path / "iris"
    shutil.copytree(FUNCTIONS / "iris", directory)
    (directory / "model.onnx").write_bytes(b"\x08\x07garbage")
    done = mlfn("validate", str(directory))
    assert done.returncode == 2
    assert done.stderr.startswith("mlfn validate: error: model.onnx: expected a valid ONNX model")
    assert "Traceback" not in done.stderr
