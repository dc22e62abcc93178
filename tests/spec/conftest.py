"""Real ONNX models written with skl2onnx into temporary model directories."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def iris_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    onx = to_onnx(model, x[:1].astype(np.float32), target_opset=17)
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.fixture
def make_dir(tmp_path: Path, iris_onnx: Path) -> Callable[..., Path]:
    """A model directory holding the iris model and, optionally, an mlfn.toml and other files."""

    def make(toml: str | None = None, name: str = "iris", **files: str) -> Path:
        directory = tmp_path / name
        directory.mkdir()
        shutil.copy(iris_onnx, directory / "model.onnx")
        if toml is not None:
            (directory / "mlfn.toml").write_text(toml)
        for file_name, text in files.items():
            (directory / file_name.replace("__", ".")).write_text(text)
        return directory

    return make
