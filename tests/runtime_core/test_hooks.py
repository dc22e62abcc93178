"""Pre/post-processing hooks: a tiny custom format end to end, fallbacks, errors, and modules that do not load."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import orjson
import pytest

from mlfn.runtime.errors import ModelError, RequestError, SpecError
from mlfn.runtime.hooks import load_hooks
from mlfn.runtime.service import InferenceService

SEMI = {"content-type": "text/x-semicolons"}


def test_preprocess_decodes_a_custom_format_and_postprocess_names_labels(services, direct, iris_features):
    service = services["iris-hooks"]
    rows = iris_features[[0, 60, 120]]
    body = "|".join(";".join(repr(float(v)) for v in row) for row in rows).encode()
    want = direct("iris-hooks", {"X": rows})["output_label"]
    names = ["setosa", "versicolor", "virginica"]
    expected = {"labels": [names[i] for i in want]}
    assert orjson.loads(service.invocations(body, SEMI).body) == expected
    # v1 wraps the hook's answer in predictions
    assert orjson.loads(service.v1_predict("iris-hooks", body, SEMI).body) == {"predictions": expected}


def test_preprocess_returning_none_falls_back_to_json_and_csv(services):
    service = services["iris-hooks"]
    as_json = service.invocations(b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}', {"content-type": "application/json"})
    assert orjson.loads(as_json.body) == {"labels": ["setosa"]}  # postprocess still shapes the answer
    as_csv = service.invocations(b"5.1,3.5,1.4,0.2\n", {"content-type": "text/csv"})
    assert orjson.loads(as_csv.body) == {"labels": ["setosa"]}


def test_hooks_never_apply_to_v2(services):
    doc = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
    got = orjson.loads(services["iris-hooks"].v2_infer("iris-hooks", orjson.dumps(doc), {}).body)
    assert [o["name"] for o in got["outputs"]] == ["output_label", "output_probability"]


def test_a_value_error_in_a_hook_is_a_400_naming_the_hook(services):
    with pytest.raises(RequestError) as caught:
        services["iris-hooks"].invocations(b"  ", SEMI)
    assert caught.value.status == 400
    assert caught.value.message == "preprocess in hooks.py refused the request: no rows in the body"
    with pytest.raises(RequestError, match=r"preprocess in hooks\.py refused the request: could not convert"):
        services["iris-hooks"].invocations(b"1;x;3;4", SEMI)


def test_other_hook_exceptions_are_500(services):
    with pytest.raises(ModelError, match=r"preprocess in hooks\.py failed: RuntimeError: the hook broke"):
        services["iris-hooks"].invocations(b"boom", SEMI)


def test_hook_feeds_are_checked_like_any_other(services):
    with pytest.raises(RequestError, match=r"input 'X': dimension 1 must be 4"):
        services["iris-hooks"].invocations(b"1;2;3", SEMI)


def test_unknown_content_type_with_hooks_names_the_hook(services):
    with pytest.raises(RequestError) as caught:
        services["iris-hooks"].invocations(b"x", {"content-type": "image/png"})
    assert caught.value.status == 415
    assert "preprocess in hooks.py" in caught.value.message


def write(tmp_path: Path, text: str, name: str = "hooks.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("import not_a_module_anywhere\n", ["hooks.py", "ModuleNotFoundError", "not_a_module_anywhere"]),
        ("def preprocess(body, content_type)\n    return None\n", ["hooks.py", "SyntaxError"]),
        ("raise RuntimeError('no config')\n", ["hooks.py", "RuntimeError: no config"]),
        ("preprocess = 42\n", ["hooks.py: preprocess", "a function taking 2 argument(s)", "int"]),
        ("def preprocess(body):\n    return None\n", ["hooks.py: preprocess", "2 argument(s)", "preprocess(body)"]),
        ("def postprocess(a, b, c):\n    return a\n", ["hooks.py: postprocess", "1 argument(s)"]),
        ("X = 1\n", ["hooks.py", "preprocess or postprocess", "neither"]),
    ],
)
def test_a_hooks_file_that_does_not_load_is_a_spec_error(tmp_path, text, words):
    with pytest.raises(SpecError) as caught:
        load_hooks(write(tmp_path, text))
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_service_from_a_directory_with_broken_hooks_fails_at_load(tmp_path, model_dirs):
    directory = tmp_path / "broken"
    shutil.copytree(model_dirs["iris-hooks"], directory)
    write(directory, "import not_a_module_anywhere\n")
    with pytest.raises(SpecError, match=r"hooks\.py"):
        InferenceService.from_dir(directory, threads=1)


def test_preprocess_returning_something_odd_is_a_500(tmp_path, model_dirs):
    directory = tmp_path / "odd"
    shutil.copytree(model_dirs["iris-hooks"], directory)
    write(directory, "def preprocess(body, content_type):\n    return [1, 2]\n")
    service = InferenceService.from_dir(directory, threads=1)
    with pytest.raises(ModelError, match="returned list; expected a mapping of input name to numpy array"):
        service.invocations(b"x", SEMI)


def test_postprocess_only_and_a_result_json_cannot_hold(tmp_path, model_dirs):
    directory = tmp_path / "post"
    shutil.copytree(model_dirs["iris-hooks"], directory)
    write(directory, """
        import numpy as np

        def postprocess(outputs):
            if outputs["output_label"][0] == 2:
                return {"odd": object()}
            return {"first": outputs["output_label"][:1], "raw": b"\\x00\\x01", "half": np.float16(0.5)}
    """)
    service = InferenceService.from_dir(directory, threads=1)
    reply = service.v1_predict("iris-hooks", b"[[5.1, 3.5, 1.4, 0.2]]", {})
    assert orjson.loads(reply.body) == {"predictions": {"first": [0], "raw": {"b64": "AAE="}, "half": 0.5}}
    with pytest.raises(ModelError, match="cannot be written as JSON"):
        service.v1_predict("iris-hooks", b"[[6.5, 3, 5.5, 2]]", {})
    with pytest.raises(RequestError) as caught:  # no preprocess: other content types are refused
        service.invocations(b"x", {"content-type": "image/png"})
    assert caught.value.status == 415 and "preprocess" not in caught.value.message


def test_preprocess_may_return_lists_and_casts_are_checked(tmp_path, model_dirs):
    directory = tmp_path / "lists"
    shutil.copytree(model_dirs["iris-hooks"], directory)
    write(directory, """
        def preprocess(body, content_type):
            return {"X": [[float(v) for v in body.split(b",")]]}
    """)
    service = InferenceService.from_dir(directory, threads=1)
    got = orjson.loads(service.invocations(b"5.1,3.5,1.4,0.2", {"content-type": "text/plain"}).body)
    assert got["predictions"][0]["output_label"] == 0
    assert np.isclose(sum(got["predictions"][0]["output_probability"].values()), 1.0)
