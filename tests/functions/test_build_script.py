"""functions/build_models.py run as a script: complete model directories, accurate models, reproducible output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pytest

from mlfn.runtime.spec import load_spec

from .conftest import FUNCTIONS

FLOORS = {"iris": 0.9, "digits": 0.95, "topics": 0.8}  # held-out accuracy the bundled models must reach


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("built")
    done = subprocess.run([sys.executable, str(FUNCTIONS / "build_models.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_prints_each_models_held_out_accuracy(built: tuple[Path, str]) -> None:
    printed = dict(re.findall(r"^(\w+): held-out accuracy ([0-9.]+)", built[1], re.MULTILINE))
    assert sorted(printed) == sorted(FLOORS)
    for name, floor in FLOORS.items():
        assert float(printed[name]) >= floor


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_output_folders_are_complete_model_directories(built: tuple[Path, str], name: str) -> None:
    spec = load_spec(built[0] / name)
    assert spec.name == name
    committed = load_spec(FUNCTIONS / name)
    assert spec.signature_json() == committed.signature_json()
    assert spec.settings == committed.settings


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_built_models_reach_the_floor_and_match_the_committed_ones(
    built: tuple[Path, str], build_models: ModuleType, name: str
) -> None:
    split = getattr(build_models, f"{name}_split")()
    labels = {}
    for where in (built[0], FUNCTIONS):
        session = ort.InferenceSession(str(where / name / "model.onnx"), providers=["CPUExecutionProvider"])
        labels[where] = session.run(None, {session.get_inputs()[0].name: split.x_test})[0]
    assert np.mean(labels[built[0]] == split.y_test) >= FLOORS[name]
    np.testing.assert_array_equal(labels[built[0]], labels[FUNCTIONS])


def test_example_pictures_are_reproduced(built: tuple[Path, str]) -> None:
    for png in sorted((FUNCTIONS / "digits" / "examples").glob("*.png")):
        assert (built[0] / "digits" / "examples" / png.name).read_bytes() == png.read_bytes()


def test_two_exports_are_byte_identical(build_models: ModuleType, tmp_path: Path) -> None:
    """skl2onnx's random graph name and unordered opsets are pinned, so a rebuild changes no byte."""
    blobs = []
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
        build_models.export(build_models.IRIS, tmp_path / run)
        blobs.append((tmp_path / run / "model.onnx").read_bytes())
    assert blobs[0] == blobs[1]
