"""What a new user does first, through the real `mlfn` command against the local emulator: a folder holding only
model.onnx answers under the name deploy prints, `--target` overrides the model's own target, and `mlfn invoke`
says what is wrong with a body instead of passing on a confusing answer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # stack synthesis (jsii + node) per model
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROW = [5.1, 3.5, 1.4, 0.2]
V2 = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}


def test_a_folder_with_only_model_onnx_answers_under_its_folders_name(cli: Any, h: Any, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(IRIS / "model.onnx", folder / "model.onnx")
    deployed = cli("deploy", str(folder), "--local")
    assert "mlfn invoke mixed --local" in deployed.stderr and "/v1/models/mixed:predict" in deployed.stderr
    assert "none none" not in deployed.stderr and "model layers only, no lambda runtime base" in deployed.stderr

    answer = cli("invoke", "mixed", "--local", "--data", json.dumps(V2), "--json").json()
    assert answer["status"] == 200, answer
    assert answer["url"].endswith("/v2/models/mixed/infer")
    assert answer["body"]["model_name"] == "mixed"
    want = h.onnxruntime_answer(folder, [ROW])[0]["output_label"]
    assert next(o for o in answer["body"]["outputs"] if o["name"] == "output_label")["data"] == [want]

    csv = cli("invoke", "mixed", "--local", "--data", "5.1,3.5,1.4,0.2\n6.2,2.9,4.3,1.3", "--json").json()
    assert csv["status"] == 200 and csv["url"].endswith("/invocations"), csv
    assert len(csv["body"]["predictions"]) == 2

    broken = cli("invoke", "mixed", "--local", "--data", '{"instances": [[5.1, 3.5, 1.4, 0.2]]', check=False)
    assert broken.code == 2
    assert "--data is not valid JSON: Expecting ',' delimiter at line 1, column 37" in broken.stderr

    empty = cli("invoke", "mixed", "--local", "--data", "[]", "--json", check=False)
    assert empty.code == 1 and empty.json()["status"] == 400
    assert empty.json()["body"]["error"] == "the request body (a JSON list of rows) is empty; expected at least one row"
    cli("destroy", "mixed", "--local", "--yes")


def test_target_override_deploys_the_other_target(cli: Any, h: Any, tmp_path: Path) -> None:
    model = h.copy_model(IRIS, tmp_path / "iris-override", name="iris-override")  # its own target: lambda
    deployed = cli("deploy", str(model), "--local", "--target", "sagemaker", "--json").json()
    assert deployed["target"] == "sagemaker" and deployed["status"] == "CREATED"
    assert cli("status", "iris-override", "--local", "--json").json()["target"] == "sagemaker"
    answer = cli("invoke", "iris-override", "--local", "--data", json.dumps({"instances": [ROW]}), "--json").json()
    assert answer["status"] == 200 and answer["url"].endswith("/invocations")
    assert h.same_predictions(answer["body"]["predictions"], h.onnxruntime_answer(model, [ROW]))
    cli("destroy", "iris-override", "--local", "--yes")
