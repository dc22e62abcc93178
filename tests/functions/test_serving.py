"""Each bundled function served through mlfn's InferenceService, compared with onnxruntime run directly."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from mlfn.runtime.errors import RequestError
from mlfn.runtime.service import InferenceService

from .conftest import FUNCTIONS

JSON = {"content-type": "application/json"}
PNG = {"content-type": "image/png"}


@pytest.fixture(scope="module")
def iris() -> InferenceService:
    return InferenceService.from_dir(FUNCTIONS / "iris")


@pytest.fixture(scope="module")
def digits() -> InferenceService:
    return InferenceService.from_dir(FUNCTIONS / "digits")


def direct(name: str, x: np.ndarray) -> list[Any]:
    session = ort.InferenceSession(str(FUNCTIONS / name / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})  # type: ignore[no-any-return]


def reply_json(reply: Any) -> Any:
    assert reply.status == 200 and reply.content_type.startswith("application/json")
    return json.loads(reply.body)


def test_iris_v1_example_returns_labels_and_zipmap_probabilities(iris: InferenceService) -> None:
    body = (FUNCTIONS / "iris" / "example.json").read_bytes()
    predictions = reply_json(iris.v1_predict("iris", body, JSON))["predictions"]
    labels, maps = direct("iris", np.array(json.loads(body)["instances"], np.float32))
    assert [p["output_label"] for p in predictions] == list(labels) == ["setosa", "versicolor", "virginica"]
    for served, expected in zip(predictions, maps, strict=True):
        assert served["output_probability"].keys() == expected.keys()
        for species, p in expected.items():
            assert served["output_probability"][species] == pytest.approx(p, rel=1e-6)


def test_iris_held_out_rows_through_invocations(iris: InferenceService, build_models: ModuleType) -> None:
    x = build_models.iris_split().x_test
    body = json.dumps({"instances": x.tolist()}).encode()
    served = [p["output_label"] for p in reply_json(iris.invocations(body, JSON))["predictions"]]
    assert served == list(direct("iris", x)[0])


def test_iris_csv_through_invocations(iris: InferenceService) -> None:
    reply = iris.invocations(b"5.1,3.5,1.4,0.2\n7.7,3.0,6.1,2.3\n", {"content-type": "text/csv"})
    assert [p["output_label"] for p in reply_json(reply)["predictions"]] == ["setosa", "virginica"]


@pytest.mark.parametrize("digit", [0, 3, 7])
def test_digits_png_through_invocations(digits: InferenceService, hooks: ModuleType, digit: int) -> None:
    png = (FUNCTIONS / "digits" / "examples" / f"{digit}.png").read_bytes()
    served = reply_json(digits.invocations(png, PNG))
    labels, probabilities = direct("digits", hooks.preprocess(png, "image/png")["pixels"])
    assert served["predictions"][0]["digit"] == int(labels[0]) == digit
    served_p = served["predictions"][0]["probabilities"]
    np.testing.assert_allclose([served_p[str(d)] for d in range(10)], probabilities[0], atol=1e-6)


def test_digits_png_through_v1_predict(digits: InferenceService) -> None:
    png = (FUNCTIONS / "digits" / "examples" / "7.png").read_bytes()
    assert reply_json(digits.v1_predict("digits", png, PNG))["predictions"][0]["digit"] == 7


def test_digits_json_instances_fall_back_to_the_default_codec(digits: InferenceService,
                                                                build_models: ModuleType) -> None:
    x = build_models.digits_split().x_test[:25]
    body = json.dumps({"instances": x.tolist()}).encode()
    served = reply_json(digits.v1_predict("digits", body, JSON))["predictions"]
    assert [p["digit"] for p in served] == direct("digits", x)[0].tolist()


def test_digits_v2_infer_skips_the_hooks(digits: InferenceService, build_models: ModuleType) -> None:
    x = build_models.digits_split().x_test[:2]
    body = json.dumps({"inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()
    outputs = {o["name"]: o for o in reply_json(digits.v2_infer("digits", body, JSON))["outputs"]}
    assert outputs["label"]["data"] == direct("digits", x)[0].tolist()
    assert outputs["probabilities"]["shape"] == [2, 10]


def test_digits_corrupt_png_is_a_400_naming_the_problem(digits: InferenceService) -> None:
    png = bytearray((FUNCTIONS / "digits" / "examples" / "3.png").read_bytes())
    png[-20] ^= 0xFF  # inside the IDAT chunk: its CRC no longer matches
    with pytest.raises(RequestError) as caught:
        digits.invocations(bytes(png), PNG)
    assert caught.value.status == 400
    assert "invalid picture" in caught.value.message and "corrupted upload" in caught.value.message
