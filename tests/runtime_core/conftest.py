"""Small real ONNX models built once per session with `onnx.helper`, and services over them.

- `dtypes`: one Identity per ONNX dtype (`x_<dtype>` [batch, 2] -> `y_<dtype>`), every type in and out;
- `pair`: two inputs, one with a fixed dimension, two outputs (`scaled` = a * b, `total` = sum of a per row);
- `fixed`: one input with no batch dimension (float32[3] -> its negation), so v1 runs per instance;
- `iris`: scikit-learn LogisticRegression on iris through skl2onnx, with its ZipMap output;
- `fails`: a Reshape that onnxruntime cannot do for some inputs (a model failure at run time).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from mlfn.runtime.dtypes import DTYPES
from mlfn.runtime.service import InferenceService

OPSET = 17
DTYPE_NAMES = [d.name for d in DTYPES if d.numpy is not None]


def save(model: onnx.ModelProto, directory: Path, toml: str = "", **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(model)
    (directory / "model.onnx").write_bytes(model.SerializeToString())
    if toml:
        (directory / "mlfn.toml").write_text(textwrap.dedent(toml), encoding="utf-8")
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def graph_model(nodes: list[Any], inputs: list[Any], outputs: list[Any], initializers: tuple[Any, ...] = ()) -> Any:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def dtypes_model() -> onnx.ModelProto:
    inputs, outputs, nodes = [], [], []
    for d in DTYPES:
        if d.numpy is None:
            continue
        inputs.append(helper.make_tensor_value_info(f"x_{d.name}", d.onnx, ["batch", 2]))
        outputs.append(helper.make_tensor_value_info(f"y_{d.name}", d.onnx, ["batch", 2]))
        nodes.append(helper.make_node("Identity", [f"x_{d.name}"], [f"y_{d.name}"]))
    return graph_model(nodes, inputs, outputs)


def pair_model() -> onnx.ModelProto:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3])
    b = helper.make_tensor_value_info("b", TensorProto.INT64, ["batch", 1])
    scaled = helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["batch", 3])
    total = helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch"])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["a", "bf"], ["scaled"]),
        helper.make_node("ReduceSum", ["a", "axes"], ["total"], keepdims=0),
    ]
    return graph_model(nodes, [a, b], [scaled, total], [axes])


def fixed_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    return graph_model([helper.make_node("Neg", ["x"], ["y"])], [x], [y])


def failing_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])
    return graph_model([helper.make_node("Reshape", ["x", "shape"], ["y"])], [x], [y], [shape])


def iris_model() -> tuple[onnx.ModelProto, np.ndarray]:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    features = features.astype(np.float32)
    classifier = LogisticRegression(max_iter=1000).fit(features, labels)
    return to_onnx(classifier, features[:1], target_opset={"": OPSET, "ai.onnx.ml": 3}), features


HOOKS = '''
    """Decodes `text/x-semicolons`: rows of `;`-separated numbers separated by `|`; labels as names."""
    import numpy as np

    NAMES = ["setosa", "versicolor", "virginica"]


    def preprocess(body, content_type):
        if content_type != "text/x-semicolons":
            return None
        text = body.decode()
        if not text.strip():
            raise ValueError("no rows in the body")
        if text.startswith("boom"):
            raise RuntimeError("the hook broke")
        rows = [[float(v) for v in row.split(";")] for row in text.split("|")]
        return {"X": np.asarray(rows)}  # float64 on purpose: mlfn casts to the input's float32


    def postprocess(outputs):
        return {"labels": [NAMES[int(i)] for i in outputs["output_label"]]}
'''


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    iris, _ = iris_model()
    return {
        "dtypes": save(dtypes_model(), root / "dtypes"),
        "pair": save(pair_model(), root / "pair", 'name = "pair"\n'),
        "fixed": save(fixed_model(), root / "fixed"),
        "fails": save(failing_model(), root / "fails"),
        "iris": save(iris, root / "iris"),
        "iris-hooks": save(iris, root / "iris-hooks", 'name = "iris-hooks"\nhooks = "hooks.py"\n',
                           **{"hooks.py": HOOKS}),
    }


@pytest.fixture(scope="session")
def iris_features() -> np.ndarray:
    return iris_model()[1]


@pytest.fixture(scope="session")
def services(model_dirs: dict[str, Path]) -> dict[str, InferenceService]:
    return {name: InferenceService.from_dir(path, threads=1) for name, path in model_dirs.items()}


@pytest.fixture(scope="session")
def direct(model_dirs: dict[str, Path]) -> Callable[[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Run a model straight through onnxruntime, for comparison with what the service returns."""
    sessions: dict[str, ort.InferenceSession] = {}

    def run(name: str, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        if name not in sessions:
            sessions[name] = ort.InferenceSession(str(model_dirs[name] / "model.onnx"),
                                                  providers=["CPUExecutionProvider"])
        session = sessions[name]
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feeds), strict=True))

    return run
