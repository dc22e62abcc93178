"""`mlfn build`: a deterministic model layer and an image config that extends the base."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from mlfn.cli.main import main
from mlfn.cli.packaging.base import Base, from_layout
from mlfn.cli.packaging.layer import rootfs_entries, write_layer
from mlfn.cli.packaging.oci import LAYER_GZIP, MANIFEST, Descriptor, Image, Layout, canonical_json, make_manifest

from .helpers import layer_members, mlfn_json


def test_same_input_same_digest_across_paths_and_mtimes(iris_dir: Path, tmp_path: Path, mlfn_home: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    first = mlfn_json(capsys, "build", str(iris_dir))
    again = mlfn_json(capsys, "build", str(iris_dir), "--out", str(tmp_path / "again"))
    elsewhere = tmp_path / "elsewhere" / "deeper" / "iris"
    shutil.copytree(iris_dir, elsewhere)
    for i, f in enumerate(sorted(elsewhere.iterdir())):
        os.utime(f, (1_000_000 + i, 1_000_000 + i))
        f.chmod(0o600)
    (elsewhere / "__pycache__").mkdir()
    (elsewhere / "__pycache__" / "hooks.cpython-311.pyc").write_bytes(b"cache")
    copy = mlfn_json(capsys, "build", str(elsewhere), "--out", str(tmp_path / "copy"))
    assert first["digest"].startswith("sha256:")
    assert first["digest"] == again["digest"] == copy["digest"]
    assert first["layers"] == copy["layers"]

    (elsewhere / "labels.txt").write_text("changed\n")
    changed = mlfn_json(capsys, "build", str(elsewhere), "--out", str(tmp_path / "changed"))
    assert changed["digest"] != first["digest"]


def test_prints_the_digest_and_which_base(iris_dir: Path, mlfn_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(iris_dir)]) == 0
    out, err = capsys.readouterr()
    assert out.strip().startswith("sha256:") and len(out.strip()) == 71
    assert "base (lambda): none" in err


def test_layer_is_normalised_and_holds_only_the_folder(iris_dir: Path, mlfn_home: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (iris_dir / "sub").mkdir()
    (iris_dir / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (iris_dir / "sub" / "run.sh").chmod(0o700)
    (iris_dir / "alias.txt").symlink_to("labels.txt")
    built = mlfn_json(capsys, "build", str(iris_dir))
    blobs = [Path(built["layout"]) / "blobs" / "sha256" / la["digest"].split(":")[1] for la in built["layers"]]
    assert all(b.read_bytes()[4:8] == b"\0\0\0\0" for b in blobs)  # gzip header mtime
    weights, files = (layer_members(b) for b in blobs)
    assert [m.name for m in weights] == ["opt", "opt/mlfn", "opt/mlfn/model", "opt/mlfn/model/model.onnx"]
    members = weights + files
    names = [m.name for m in files]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert names[:3] == ["opt", "opt/mlfn", "opt/mlfn/model"]
    assert set(names[3:]) == {f"opt/mlfn/model/{n}" for n in
                              ("alias.txt", "labels.txt", "mlfn.toml", "sub", "sub/run.sh")}
    by_name = {m.name: m for m in members}
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and not m.uname for m in members)
    assert by_name["opt/mlfn/model/sub/run.sh"].mode == 0o755
    assert by_name["opt/mlfn/model/model.onnx"].mode == 0o644
    assert by_name["opt/mlfn/model/alias.txt"].issym() and by_name["opt/mlfn/model/alias.txt"].linkname == "labels.txt"


def test_refuses_a_symlink_out_of_the_folder(iris_dir: Path, tmp_path: Path, mlfn_home: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the image")
    (iris_dir / "leak.txt").symlink_to(secret)
    assert main(["build", str(iris_dir)]) == 2
    err = capsys.readouterr().err
    assert "leak.txt" in err and "symlink" in err and "Traceback" not in err


def test_config_extends_the_base(iris_dir: Path, tmp_path: Path, mlfn_home: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    base_dir = _tiny_base(tmp_path / "base")
    built = mlfn_json(capsys, "build", str(iris_dir), "--base", str(base_dir))
    layout = Layout(Path(built["layout"]))
    image, _ = layout.resolve("iris")
    base, _ = Layout(base_dir).resolve()
    cfg = image.config
    assert image.digest == built["digest"]
    assert image.layers[:-2] == base.layers and [d.digest for d in image.layers[-2:]] == [
        la["digest"] for la in built["layers"]]
    assert cfg["rootfs"]["diff_ids"] == [*base.config["rootfs"]["diff_ids"], *(la["diff_id"] for la in built["layers"])]
    assert layout.missing_blobs(image) == []
    inner = cfg["config"]
    assert "MLFN_MODEL_DIR=/opt/mlfn/model" in inner["Env"] and "BASE_VAR=1" in inner["Env"]
    assert inner["Entrypoint"] == ["/usr/bin/python3", "-m", "awslambdaric"]
    assert inner["Cmd"] == ["mlfn.runtime.lambda_handler.handler"]
    labels = inner["Labels"]
    assert labels["dev.mlfn.base"] == "tiny" and labels["dev.mlfn.model.name"] == "iris"
    signature = json.loads(labels["dev.mlfn.model.signature"])
    assert signature["inputs"][0]["datatype"] == "FP32" and signature["inputs"][0]["shape"] == [-1, 4]
    assert labels["dev.mlfn.version"]
    assert len(cfg["history"]) == 3 and cfg["created"] == "1970-01-01T00:00:00Z"
    assert labels["org.opencontainers.image.base.digest"] == base.digest


def test_container_target_gets_the_serve_command(iris_dir: Path, mlfn_home: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (iris_dir / "mlfn.toml").write_text('target = "sagemaker"\n')
    built = mlfn_json(capsys, "build", str(iris_dir))
    cfg = Layout(Path(built["layout"])).resolve()[0].config["config"]
    assert built["flavour"] == "gpu"
    assert cfg["Entrypoint"] == ["python3", "-m", "mlfn.runtime.server"] and cfg["Cmd"] == ["serve"]
    assert "8080/tcp" in cfg["ExposedPorts"]


def test_optimize_adds_the_optimised_graph_and_reports_load(iris_dir: Path, mlfn_home: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    built = mlfn_json(capsys, "build", str(iris_dir), "--optimize")
    blob = Path(built["layout"]) / "blobs" / "sha256" / built["layers"][0]["digest"].split(":")[1]
    assert "opt/mlfn/model/model.optimized.onnx" in [m.name for m in layer_members(blob)]
    prof = built["profile"]
    assert prof["optimized"]["peak_rss_mb"] > 10 and prof["original"]["load_s"] > 0
    assert mlfn_json(capsys, "build", str(iris_dir), "--optimize")["digest"] == built["digest"]


def test_optimised_graph_keeps_large_weights_in_a_mapped_data_file(tmp_path: Path, mlfn_home: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A weight of 1.4 MB goes to model.optimized.onnx.data beside the graph, in the model file's layer; the
    runtime loads the graph from the unpacked image and answers as the original model does."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from mlfn.runtime.model import Model
    from mlfn.runtime.spec import load_spec

    model_dir = tmp_path / "src" / "wide"
    model_dir.mkdir(parents=True)
    rng = np.random.default_rng(7)
    inits = [numpy_helper.from_array(rng.standard_normal((600, 600), dtype=np.float32), "w0"),
             numpy_helper.from_array(rng.standard_normal((600, 3), dtype=np.float32), "w1")]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w0"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w1"], ["y"])], "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 600])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, model_dir / "model.onnx")
    built = mlfn_json(capsys, "build", str(model_dir), "--optimize")
    blobs = Path(built["layout"]) / "blobs" / "sha256"
    names = [m.name for m in layer_members(blobs / built["layers"][0]["digest"].split(":")[1])]
    assert {"opt/mlfn/model/model.optimized.onnx", "opt/mlfn/model/model.optimized.onnx.data"} <= set(names)
    unpacked = tmp_path / "unpacked"
    for layer in built["layers"]:
        with tarfile.open(blobs / layer["digest"].split(":")[1]) as tar:
            tar.extractall(unpacked, filter="data")
    folder = unpacked / "opt" / "mlfn" / "model"
    assert (folder / "model.optimized.onnx").stat().st_size < 600 * 600 * 4  # the big weight is not inline
    loaded = Model(load_spec(folder))
    assert loaded.path.name == "model.optimized.onnx"
    x = rng.standard_normal((2, 600), dtype=np.float32)
    bare = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(loaded.run({"x": x})["y"], bare.run(None, {"x": x})[0], rtol=1e-4, atol=1e-3)


def test_architecture_mismatch_is_refused(iris_dir: Path, tmp_path: Path, mlfn_home: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (iris_dir / "mlfn.toml").write_text('[lambda]\narchitecture = "arm64"\n')
    assert main(["build", str(iris_dir), "--base", str(_tiny_base(tmp_path / "base"))]) == 2
    assert "amd64" in capsys.readouterr().err


def _tiny_base(path: Path, ref: str = "tiny", flavour: str = "", accelerator: str = "") -> Path:
    """A small stand-in base image (one layer) written with the same layer writer `mlfn runtime build` uses."""
    labels = {"dev.mlfn.flavour": flavour} if flavour else {}
    if accelerator:
        labels["dev.mlfn.accelerator"] = accelerator
    root = path.parent / f"rootfs-{path.name}"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "hello").write_text("#!/bin/sh\necho hi\n")
    layout = Layout(path).init()
    layer = write_layer(rootfs_entries(root), path / "layer.tmp")
    layout.put_file(layer.path, layer.digest, move=True)
    config = canonical_json({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin", "BASE_VAR=1"], "Entrypoint": ["/usr/bin/python3", "-m", "awslambdaric"],
                   "Cmd": ["x"], "Labels": {"dev.mlfn.base": "tiny", **labels}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tiny base"}],
    })
    # an OCI image, as other tools write them: the layout stores it as Docker v2s2 (plus an OCI twin)
    image = Image(make_manifest(config, [Descriptor(LAYER_GZIP, layer.digest, layer.size)], MANIFEST), MANIFEST,
                  config)
    layout.tag(ref, image)
    assert isinstance(from_layout(path, "lambda"), Base)
    return path


def test_a_stale_optimised_graph_in_the_folder_is_left_out(iris_dir: Path, mlfn_home: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    clean = mlfn_json(capsys, "build", str(iris_dir))
    (iris_dir / "model.optimized.onnx").write_bytes(b"stale graph from an older model")
    (iris_dir / "model.optimized.onnx.data").write_bytes(b"its initializers")
    again = mlfn_json(capsys, "build", str(iris_dir))
    assert again["digest"] == clean["digest"]


def test_a_base_of_the_other_flavour_is_refused(iris_dir: Path, tmp_path: Path, mlfn_home: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(iris_dir), "--base", str(_tiny_base(tmp_path / "base", flavour="gpu"))]) == 2
    assert "gpu base but the model needs the lambda flavour" in capsys.readouterr().err


def test_a_settings_change_keeps_the_model_file_layer(iris_dir: Path, mlfn_home: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = mlfn_json(capsys, "build", str(iris_dir))
    (iris_dir / "mlfn.toml").write_text('description = "iris, renamed"\n')
    after = mlfn_json(capsys, "build", str(iris_dir))
    assert after["layers"][0] == before["layers"][0] and after["layers"][1] != before["layers"][1]


@pytest.mark.parametrize(("gpu", "accelerator", "refused"),
                         [(True, "cpu", True), (True, "cuda", False), (False, "cpu", False)])
def test_a_gpu_model_needs_a_cuda_base(iris_dir: Path, tmp_path: Path, mlfn_home: Path,
                                       capsys: pytest.CaptureFixture[str], gpu: bool, accelerator: str,
                                       refused: bool) -> None:
    """The offline gpu flavour is labelled dev.mlfn.accelerator=cpu (no CUDA): a gpu = true model on it would run
    on the CPU of a GPU instance, so the build (and push and deploy, which build the same way) refuses it."""
    (iris_dir / "mlfn.toml").write_text(f'target = "sagemaker"\ngpu = {str(gpu).lower()}\n')
    base = _tiny_base(tmp_path / "base", flavour="gpu", accelerator=accelerator)
    code = main(["build", str(iris_dir), "--base", str(base)])
    err = capsys.readouterr().err
    if not refused:
        assert code == 0, err
        return
    assert code == 2 and len(err.strip().splitlines()) == 2  # the base line, then the one-line refusal
    assert f"iris has gpu = true but base {base}" in err and "CPU-only" in err and "CUDAExecutionProvider" in err
    assert "mlfn runtime build --flavour gpu --builder docker" in err and "Traceback" not in err


def test_a_published_descriptor_under_mlfn_home_is_used_without_its_layout(tmp_path: Path, mlfn_home: Path) -> None:
    """`mlfn runtime publish` writes `<MLFN_HOME>/images/base-<flavour>.json`, never into mlfn's package: a build
    with that home finds it even when the local layout is gone (e.g. only the descriptor was copied here)."""
    from mlfn.cli.packaging.base import images_home, resolve_base, write_descriptor

    image, _ = Layout(_tiny_base(tmp_path / "elsewhere")).resolve("tiny")
    descriptor = images_home() / "base-lambda.json"
    descriptor.parent.mkdir(parents=True)
    write_descriptor(descriptor, image, f"registry.example/mlfn-runtime@{image.digest}", "lambda")
    base = resolve_base("lambda")
    assert (base.kind, base.source, base.reference) == ("descriptor", str(descriptor),
                                                       f"registry.example/mlfn-runtime@{image.digest}")


def test_a_large_layer_of_float_weights_is_stored_and_a_compressible_one_deflated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deflating random float32 weights saves ~7% at ~30 MB/s of CPU: such a layer is written at gzip level 0
    (still gzip, same digest on every build); text of the same size is compressed as before."""
    import gzip

    import numpy as np

    from mlfn.cli.packaging import layer as layers

    monkeypatch.setattr(layers, "STORED_MIN_BYTES", 1 << 20)  # the rule at a test's scale (64 MiB in use)
    folder = tmp_path / "m"
    folder.mkdir()
    weights = np.random.default_rng(3).standard_normal(600_000, dtype=np.float32).tobytes()  # 2.4 MB
    (folder / "model.onnx").write_bytes(weights)
    (folder / "labels.txt").write_text("setosa versicolor virginica\n" * 90_000)  # 2.5 MB of text
    for name, raw in (("model.onnx", weights), ("labels.txt", (folder / "labels.txt").read_bytes())):
        entries = [e for e in layers.model_entries(folder) if e.kind == "dir" or e.name.endswith(name)]
        first = layers.write_layer(entries, tmp_path / f"{name}.1.tar.gz")
        again = layers.write_layer(entries, tmp_path / f"{name}.2.tar.gz")
        assert first.digest == again.digest and layers.entries_key(entries) == layers.entries_key(list(entries))
        with tarfile.open(first.path) as tar:
            member = tar.extractfile(f"opt/mlfn/model/{name}")
            assert member is not None and member.read() == raw
        if name == "model.onnx":
            assert layers.gzip_level(entries) == 0 and first.size > len(raw)  # stored: no smaller than the tar
        else:
            assert layers.gzip_level(entries) == layers.GZIP_LEVEL and first.size < len(raw) / 10
        assert gzip.decompress(first.path.read_bytes())[:512]  # a valid gzip stream either way
