"""mlfn.runtime.model: session configuration, feed checks and failures, against real onnxruntime sessions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from mlfn.runtime.cpu_share import CpuShare
from mlfn.runtime.errors import ModelError, RequestError
from mlfn.runtime.model import CPU, CUDA, Model, choose_providers, optimized_path
from mlfn.runtime.spec import load_spec

from .conftest import DTYPE_NAMES, fixed_model, save


def dtype_feeds(rows: int = 2) -> dict[str, np.ndarray]:
    """A value of every dtype, with awkward values where a type has them."""
    feeds: dict[str, np.ndarray] = {}
    for name in DTYPE_NAMES:
        if name == "string":
            feeds[f"x_{name}"] = np.array([["héllo", ""]] * rows, dtype=object)
        elif name == "bool":
            feeds[f"x_{name}"] = np.array([[True, False]] * rows)
        else:
            info = np.finfo(name) if name.startswith("float") else np.iinfo(name)
            feeds[f"x_{name}"] = np.array([[info.min, info.max]] * rows, dtype=name)
    return feeds


def test_every_dtype_runs_and_equals_onnxruntime(services, direct):
    model = services["dtypes"].model
    feeds = dtype_feeds()
    got = model.run(feeds)
    want = direct("dtypes", feeds)
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name].dtype == value.dtype, name
        np.testing.assert_array_equal(got[name], value)


def test_outputs_can_be_chosen(services):
    got = services["pair"].model.run({"a": np.ones((1, 3), np.float32), "b": np.array([[2]])}, outputs=["total"])
    assert list(got) == ["total"]
    np.testing.assert_array_equal(got["total"], [3.0])


def test_session_is_configured_deliberately(model_dirs):
    model = Model(load_spec(model_dirs["pair"]), share=CpuShare(1.16, "lambda-memory"))
    options = model.session.get_session_options()
    assert model.threads == 1
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert model.session.get_providers()[-1] == CPU


def test_threads_follow_the_share_then_the_setting(tmp_path):
    save(fixed_model(), tmp_path / "six")
    assert Model(load_spec(tmp_path / "six"), share=CpuShare(5.79, "lambda-memory")).threads == 6
    save(fixed_model(), tmp_path / "set", "[server]\nintra_op_threads = 3\ngraph_optimization = 'basic'\n")
    model = Model(load_spec(tmp_path / "set"), share=CpuShare(5.79, "lambda-memory"))
    assert model.threads == 3
    options = model.session.get_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


def test_unmetered_cpu_keeps_spinning_default(model_dirs):
    model = Model(load_spec(model_dirs["fixed"]), share=CpuShare(2.0, "affinity"))
    with pytest.raises(RuntimeError, match="does not have configuration"):  # left at onnxruntime's default
        model.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")


def test_providers_prefer_cuda_when_present_and_always_fall_back_to_cpu():
    assert choose_providers((), [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers((), [CPU]) == [CPU]
    assert choose_providers(("TensorrtExecutionProvider", CUDA), [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers((CPU,), [CUDA, CPU]) == [CPU]


def test_build_time_optimized_model_is_used_when_fresh(tmp_path, model_dirs):
    directory = tmp_path / "opt"
    shutil.copytree(model_dirs["pair"], directory)
    spec = load_spec(directory)
    target = optimized_path(spec)
    assert target.name == "model.optimized.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(spec.model_path), options, providers=[CPU])
    model = Model(spec, threads=1)
    assert model.path == target
    feeds = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([[1], [2]])}
    np.testing.assert_array_equal(model.run(feeds)["scaled"], [[0, 1, 2], [6, 8, 10]])

    stale = spec.model_path.stat().st_mtime - 60
    os.utime(target, (stale, stale))
    assert Model(spec, threads=1).path == spec.model_path


def test_broken_optimized_model_falls_back_to_the_model(tmp_path, model_dirs):
    directory = tmp_path / "broken-opt"
    shutil.copytree(model_dirs["fixed"], directory)
    (directory / "model.optimized.onnx").write_bytes(b"not onnx")
    model = Model(load_spec(directory), threads=1)
    assert model.path.name == "model.onnx"
    np.testing.assert_array_equal(model.run({"x": np.ones(3, np.float32)})["y"], [-1, -1, -1])


@pytest.mark.parametrize(
    ("feeds", "words"),
    [
        ({"a": np.ones((1, 3), np.float32)}, ["missing input 'b'", "a (float32[batch, 3])", "b (int64[batch, 1])"]),
        ({"a": np.ones((1, 3), np.float32), "b": np.ones((1, 1), np.int64), "c": np.ones(1)},
         ["unknown input 'c'", "a (float32[batch, 3])"]),
        ({"a": np.ones((1, 4), np.float32), "b": np.ones((1, 1), np.int64)},
         ["input 'a'", "dimension 1 must be 3", "float32[batch, 3]", "shape [1, 4]"]),
        ({"a": np.ones(3, np.float32), "b": np.ones((1, 1), np.int64)},
         ["input 'a'", "wrong rank 1", "shape [3]"]),
        ({"a": np.array([["x", "y", "z"]]), "b": np.ones((1, 1), np.int64)},
         ["input 'a'", "not numeric", "strings such as 'x'"]),
        ({"a": np.ones((1, 3), np.float32), "b": np.array([[1.5]])},
         ["input 'b'", "must be integers", "int64[batch, 1]", "fractions such as 1.5"]),
    ],
)
def test_bad_feeds_name_the_input_and_what_was_expected(services, feeds, words):
    with pytest.raises(RequestError) as caught:
        services["pair"].model.run(feeds)
    assert caught.value.status == 400
    for word in words:
        assert word in caught.value.message
    assert caught.value.to_json()["error"] == caught.value.message


def test_safe_casts_are_made_and_lossy_ones_refused(services):
    model = services["pair"].model
    got = model.run({"a": np.ones((1, 3), np.float64), "b": np.array([[2.0]])})  # float64 -> float32, 2.0 -> 2
    np.testing.assert_array_equal(got["scaled"], [[2, 2, 2]])
    with pytest.raises(RequestError, match=r"out of range"):
        services["dtypes"].model.run({**dtype_feeds(1), "x_uint8": np.array([[1, 300]])})


def test_a_failure_inside_onnxruntime_is_a_model_error(services):
    model = services["fails"].model
    np.testing.assert_array_equal(model.run({"x": np.ones((1, 3), np.float32)})["y"], [[1, 1, 1]])
    with pytest.raises(ModelError, match=r"the model failed while running.*Reshape"):
        model.run({"x": np.ones((1, 2), np.float32)})
    assert model.run({"x": np.ones((2, 3), np.float32)})["y"].shape == (2, 3)  # still serving


def test_unloadable_model_is_a_clear_error(tmp_path):
    directory = save(fixed_model(), tmp_path / "bad")
    spec = load_spec(directory)
    data = (directory / "model.onnx").read_bytes()
    (directory / "model.onnx").write_bytes(data.replace(b"Neg", b"Nope"))  # an operator nobody has
    with pytest.raises(ModelError, match=r"model\.onnx: onnxruntime cannot load the model"):
        Model(spec, threads=1)


def test_ports_are_precomputed(services):
    model = services["pair"].model
    assert model.input_names == ("a", "b")
    assert model.output_names == ("scaled", "total")
    assert model.ports["a"].fixed == ((1, 3),)
    assert model.batched
    assert not services["fixed"].model.batched


def test_model_file_path_is_inside_the_directory(model_dirs):
    spec = load_spec(model_dirs["pair"])
    assert Path(Model(spec, threads=1).path).parent == spec.directory


@pytest.fixture
def gpu_iris(model_dirs: dict[str, Path], tmp_path: Path) -> Path:
    """The iris model with `gpu = true` (a SageMaker model), on this machine's CPU-only onnxruntime."""
    folder = tmp_path / "gpu-iris"
    shutil.copytree(model_dirs["iris"], folder)
    (folder / "mlfn.toml").write_text('name = "gpu-iris"\ntarget = "sagemaker"\ngpu = true\n')
    return folder


def test_a_gpu_model_without_cuda_fails_to_load_instead_of_running_on_the_cpu(gpu_iris, monkeypatch):
    assert CUDA not in ort.get_available_providers()  # this machine's onnxruntime is the CPU build
    monkeypatch.delenv("MLFN_ALLOW_CPU_FOR_GPU", raising=False)
    with pytest.raises(ModelError) as failed:
        Model(load_spec(gpu_iris), threads=1)
    message = str(failed.value)
    assert message.startswith("model.onnx: the model has gpu = true but this onnxruntime ")
    assert f"has no {CUDA} (it has " in message and "the image's base is CPU-only" in message
    assert "\n" not in message
    monkeypatch.setenv("MLFN_ALLOW_CPU_FOR_GPU", "1")  # the local emulator and the health probe: no GPU there
    assert Model(load_spec(gpu_iris), threads=1).providers == [CPU]


def test_the_server_of_a_gpu_model_without_cuda_exits_with_one_line(gpu_iris):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MLFN_ALLOW_CPU_FOR_GPU"}
    done = subprocess.run([sys.executable, "-m", "mlfn.runtime.server", "serve", "--host", "127.0.0.1", "--port", "0"],
                          env={**env, "MLFN_MODEL_DIR": str(gpu_iris)}, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "model failed to load: model.onnx: the model has gpu = true" in errors[0]
    assert "Traceback" not in done.stderr
