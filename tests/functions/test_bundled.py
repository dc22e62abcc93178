"""The committed functions/*: valid model directories, with the documented signatures and faithful models."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pytest

from mlfn.runtime.spec import load_spec

from .conftest import FUNCTIONS

SIGNATURES = {  # name -> (inputs, outputs) as `mlfn validate` describes them; docs/model-directory.md shows these
    "iris": ({"input": "float32[?, 4]"}, {"output_label": "string[?]", "output_probability": "sequence"}),
    "digits": ({"pixels": "float32[?, 64]"}, {"label": "int64[?]", "probabilities": "float32[?, 10]"}),
    "topics": ({"text": "string[?]"}, {"label": "string[?]", "probabilities": "float32[?, 6]"}),
}


def test_every_function_folder_is_known(function_dirs: list[Path]) -> None:
    assert [p.name for p in function_dirs] == sorted(SIGNATURES)


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_load_spec_accepts_the_folder(name: str) -> None:
    spec = load_spec(FUNCTIONS / name)
    inputs, outputs = SIGNATURES[name]
    assert spec.name == name and spec.target == "lambda"
    assert {t.name: t.describe() for t in spec.inputs} == inputs
    assert {t.name: t.describe() for t in spec.outputs} == outputs
    assert spec.settings.description
    assert spec.settings.auth.type == "iam"  # bundled examples stay private by default
    assert spec.settings.lambda_.memory_mb == 1024
    assert spec.batchable
    assert spec.model_bytes < 1_000_000


def test_iris_output_probability_is_a_sequence_of_maps() -> None:
    session = ort.InferenceSession(str(FUNCTIONS / "iris" / "model.onnx"), providers=["CPUExecutionProvider"])
    types = {o.name: o.type for o in session.get_outputs()}
    assert types == {"output_label": "tensor(string)", "output_probability": "seq(map(string,tensor(float)))"}


def test_digits_declares_its_hooks() -> None:
    spec = load_spec(FUNCTIONS / "digits")
    assert spec.hooks_path == FUNCTIONS / "digits" / "hooks.py"
    assert sorted(p.name for p in (FUNCTIONS / "digits" / "examples").glob("*.png")) == ["0.png", "3.png", "7.png"]


def test_iris_example_request() -> None:
    body = json.loads((FUNCTIONS / "iris" / "example.json").read_text())
    assert list(body) == ["instances"]
    assert len(body["instances"]) >= 1 and all(len(row) == 4 for row in body["instances"])


def test_topics_example_request() -> None:
    body = json.loads((FUNCTIONS / "topics" / "example.json").read_text())
    assert list(body) == ["instances"]
    assert len(body["instances"]) >= 1 and all(isinstance(text, str) and text for text in body["instances"])


def test_topics_tokenizes_inside_its_graph() -> None:
    """Raw text in: the graph holds the tokenizer, in a locale every image has ("C")."""
    import onnx

    model = onnx.load(str(FUNCTIONS / "topics" / "model.onnx"))
    ops = [node.op_type for node in model.graph.node]
    assert ops[:5] == ["Reshape", "StringNormalizer", "Tokenizer", "Flatten", "TfIdfVectorizer"]
    normalizer = next(node for node in model.graph.node if node.op_type == "StringNormalizer")
    assert {a.name: onnx.helper.get_attribute_value(a) for a in normalizer.attribute}["locale"] == b"C"
    about = {p.key: p.value for p in model.metadata_props}
    classes = about["classes"].split(",")
    assert classes == sorted(classes) and len(classes) == 6
    assert ", ".join(classes) in load_spec(FUNCTIONS / "topics").settings.description  # the probabilities' order


def _run(name: str, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(FUNCTIONS / name / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})  # type: ignore[no-any-return]


def test_committed_iris_equals_scikit_learn_on_held_out_data(build_models: ModuleType) -> None:
    split = build_models.iris_split()
    model = build_models.train_iris(split)
    labels, maps = _run("iris", split.x_test)
    np.testing.assert_array_equal(labels, model.predict(split.x_test))
    onnx_probabilities = np.array([[m[c] for c in model.classes_] for m in maps])
    np.testing.assert_allclose(onnx_probabilities, model.predict_proba(split.x_test), atol=1e-5)
    assert np.mean(labels == split.y_test) >= 0.9


@pytest.mark.parametrize(("name", "atol", "floor"), [("digits", 1e-4, 0.95), ("topics", 1e-5, 0.8)])
def test_committed_model_equals_scikit_learn_on_held_out_data(
    build_models: ModuleType, name: str, atol: float, floor: float
) -> None:
    """The committed digits and topics models (probabilities as a tensor) against scikit-learn retrained here."""
    split = getattr(build_models, f"{name}_split")()
    model = getattr(build_models, f"train_{name}")(split)
    labels, probabilities = _run(name, split.x_test)
    np.testing.assert_array_equal(labels, model.predict(split.x_test))
    np.testing.assert_allclose(probabilities, model.predict_proba(split.x_test), atol=atol)
    assert np.mean(labels == split.y_test) >= floor
