"""A model directory is read into a ModelSpec, or refused with one message naming file, field and expectation."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import pytest

from mlfn.runtime.errors import SpecError
from mlfn.runtime.spec import load_spec

MakeDir = Callable[..., Path]


def test_model_alone_is_a_valid_directory(make_dir: MakeDir) -> None:
    spec = load_spec(make_dir())
    assert spec.name == "iris"
    assert spec.target == "lambda"
    assert spec.settings.lambda_.memory_mb == 2048
    assert spec.settings.auth.type == "iam"


def test_signature_matches_onnxruntime(make_dir: MakeDir) -> None:
    directory = make_dir()
    spec = load_spec(directory)
    session = ort.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [t.name for t in spec.inputs] == [i.name for i in session.get_inputs()]
    assert [t.name for t in spec.outputs] == [o.name for o in session.get_outputs()]
    for ours, theirs in zip(spec.inputs, session.get_inputs(), strict=True):
        assert ours.dtype is not None and ours.dtype.ort == theirs.type
        assert [d if isinstance(d, int) else None for d in ours.shape or ()] == [
            d if isinstance(d, int) else None for d in theirs.shape
        ]
    kinds = {t.name: t.kind for t in spec.outputs}
    assert kinds == {"output_label": "tensor", "output_probability": "sequence"}
    assert spec.batchable
    assert spec.inputs[0].describe() == "float32[?, 4]"


def test_toml_overrides_defaults(make_dir: MakeDir) -> None:
    spec = load_spec(make_dir(
        'name = "flowers"\ntarget = "sagemaker"\n[sagemaker]\ninstance_type = "ml.g5.xlarge"\nmax_copies = 4\n'
        "[auth]\ntype = \"none\"\ncors_origins = [\"https://example.com\"]\n"
        '[[lambda.schedules]]\nname = "day"\ncron = "cron(0 8 ? * MON-FRI *)"\nmin = 1\nmax = 3\n'
    ))
    assert spec.name == "flowers"
    assert spec.settings.sagemaker.max_copies == 4
    assert spec.settings.auth.cors_origins == ("https://example.com",)
    assert spec.settings.lambda_.schedules[0].max == 3


@pytest.mark.parametrize(
    ("toml", "field", "expected"),
    [
        ("[lambda]\nmemory_mb = 99\n", "lambda.memory_mb", "from 128 to 10240"),
        ("[lambda]\nmemroy_mb = 1024\n", "lambda.memroy_mb", "known keys"),
        ("bogus = 1\n", "bogus", "known keys"),
        ('target = "k8s"\n', "target", "one of lambda, sagemaker, ecs"),
        ('[lambda]\nmemory_mb = "big"\n', "lambda.memory_mb", "an integer"),
        ("[lambda]\nmemory_mb = true\n", "lambda.memory_mb", "an integer"),
        ("lambda = 3\n", "lambda", "a table"),
        ("gpu = true\n", "gpu", "Lambda has no GPUs"),
        ("[sagemaker]\nmin_copies = 3\nmax_copies = 2\n", "sagemaker.min_copies", "at most sagemaker.max_copies"),
        ('[auth]\ntype = "open"\n', "auth.type", "one of iam, none"),
        ('[auth]\ncors_origins = ["a", 1]\n', "auth.cors_origins[1]", "a string"),
        ('name = "Bad Name"\n', "name", "lowercase"),
        ("[lambda]\nreserved_concurrency = 2\nprovisioned_max = 5\n", "lambda.provisioned_max", "reserved"),
        ('[[lambda.schedules]]\ncron = "0 8 * * *"\n', "lambda.schedules[0].cron", "cron(...)"),
        ("[lambda]\nreserved_concurrency = 3\n[batch]\nconcurrency = 5\n", "batch.concurrency",
         "at most lambda.reserved_concurrency (3)"),
        ('target = "sagemaker"\n[batch]\nconcurrency = 20\nmax_payload_mb = 6\n', "batch.concurrency",
         "at most 16 with batch.max_payload_mb = 6"),
        ("[batch]\nmax_payload_mb = 101\n", "batch.max_payload_mb", "from 1 to 100"),
        ("[batch]\nmax_failed_percent = 101\n", "batch.max_failed_percent", "100"),
        ("[batch]\ntimeout_s = 0\n", "batch.timeout_s", "from 1 to 31536000"),
        ("[batch]\ntimeout_s = 31536001\n", "batch.timeout_s", "from 1 to 31536000"),
        ("[batch]\nstate_machine = true\n", "batch.bucket", "the S3 bucket the batch state machine reads"),
        ("this is = not toml =\n", "-", "valid TOML"),
    ],
)
def test_bad_settings_are_refused_with_field_and_expectation(
    make_dir: MakeDir, toml: str, field: str, expected: str
) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(make_dir(toml))
    err = caught.value
    assert err.file == "mlfn.toml"
    assert err.field == field
    assert expected in str(err)


def test_missing_and_corrupt_models_are_refused(make_dir: MakeDir, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such directory"):
        load_spec(tmp_path / "nowhere")
    directory = make_dir()
    (directory / "model.onnx").unlink()
    with pytest.raises(SpecError, match=r"model\.onnx: expected an ONNX model file, got no such file"):
        load_spec(directory)
    good = make_dir(name="other")
    data = (good / "model.onnx").read_bytes()
    for corrupt in (b"", data[: len(data) // 2], b"not an onnx file at all"):
        (good / "model.onnx").write_bytes(corrupt)
        with pytest.raises(SpecError, match=r"model\.onnx: expected a valid ONNX model"):
            load_spec(good)


def test_symlinks_out_of_the_folder_are_refused(make_dir: MakeDir, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("key")
    directory = make_dir()
    os.symlink(secret, directory / "leak.txt")
    with pytest.raises(SpecError, match=r"leak\.txt: expected a file inside the model directory"):
        load_spec(directory)


def test_model_path_may_not_leave_the_folder(make_dir: MakeDir) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(make_dir('model = "../model.onnx"\n'))
    assert caught.value.field == "model"


def test_hooks_must_be_a_python_file_inside(make_dir: MakeDir) -> None:
    with pytest.raises(SpecError, match="hooks"):
        load_spec(make_dir('hooks = "missing.py"\n'))
    hooks = "def preprocess(body, content_type):\n    return None\n"
    spec = load_spec(make_dir('hooks = "hooks.py"\n', name="withhooks", hooks__py=hooks))
    assert spec.hooks_path is not None and spec.hooks_path.name == "hooks.py"


def test_default_name_is_derived_from_the_folder(make_dir: MakeDir) -> None:
    assert load_spec(make_dir(name="My_Model.v2")).name == "my-model-v2"
    assert load_spec(make_dir(name="42")).name == "model-42"
