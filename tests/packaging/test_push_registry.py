"""Pushing to Debian's docker-registry on loopback, then reading the image back with skopeo and umoci."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlfn.cli.main import main
from mlfn.cli.packaging import registry as registry_module
from mlfn.cli.packaging.oci import Layout

from .helpers import mlfn_json, run


def test_push_and_read_back_with_skopeo_and_umoci(iris_dir: Path, registry: str, skopeo: str, umoci: str,
                                                  tmp_path: Path, mlfn_home: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    built = mlfn_json(capsys, "build", str(iris_dir))
    pushed = mlfn_json(capsys, "push", str(iris_dir), "--to", f"{registry}/models/iris:v1")
    assert pushed["digest"] == built["digest"] and len(pushed["uploaded"]) == 3

    inspect = json.loads(run(skopeo, "inspect", "--tls-verify=false", f"docker://{registry}/models/iris:v1"))
    assert inspect["Digest"] == built["digest"]
    assert inspect["Layers"] == [la["digest"] for la in built["layers"]]
    assert inspect["Labels"]["dev.mlfn.model.name"] == "iris"
    raw = json.loads(run(skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{registry}/models/iris:v1"))
    local, _ = Layout(Path(built["layout"])).resolve()
    assert raw == local.manifest

    pulled = tmp_path / "pulled"
    run(skopeo, "copy", "--src-tls-verify=false", f"docker://{registry}/models/iris:v1", f"oci:{pulled}:iris")
    bundle = tmp_path / "bundle"
    run(umoci, "unpack", "--image", f"{pulled}:iris", str(bundle))
    model = bundle / "rootfs" / "opt" / "mlfn" / "model"
    assert (model / "model.onnx").read_bytes() == (iris_dir / "model.onnx").read_bytes()
    assert (model / "labels.txt").read_text() == (iris_dir / "labels.txt").read_text()
    runtime = json.loads((bundle / "config.json").read_text())
    assert "MLFN_MODEL_DIR=/opt/mlfn/model" in runtime["process"]["env"]
    assert runtime["process"]["args"][-1] == "mlfn.runtime.lambda_handler.handler"

    again = mlfn_json(capsys, "push", built["layout"], "--to", f"{registry}/models/iris:v1")
    assert again["uploaded"] == [] and not again["manifest_put"]


def test_chunked_upload_of_a_large_layer(iris_dir: Path, registry: str, mlfn_home: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (iris_dir / "weights.bin").write_bytes(bytes(range(256)) * 40_000)  # ~10 MB, compresses well
    monkeypatch.setattr(registry_module, "MONOLITHIC_MAX", 1024)
    monkeypatch.setattr(registry_module, "CHUNK", 64 * 1024)
    pushed = mlfn_json(capsys, "push", str(iris_dir), "--to", f"{registry}/models/big")
    client = registry_module.RegistryClient(f"http://{registry}")
    body, media_type = client.get_manifest("models/big", "latest")
    assert media_type == "application/vnd.docker.distribution.manifest.v2+json"
    layer = json.loads(body)["layers"][-1]
    blob = client.get_blob("models/big", layer["digest"])
    assert len(blob) == layer["size"] and pushed["bytes_uploaded"] >= layer["size"]


def test_declared_base_is_mounted_or_refused(iris_dir: Path, registry: str, tmp_path: Path, mlfn_home: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from mlfn.cli.packaging.base import write_descriptor

    from .test_build import _tiny_base

    base_dir = _tiny_base(tmp_path / "base")
    base_pushed = mlfn_json(capsys, "push", f"{base_dir}:tiny", "--to", f"{registry}/runtime/base:lambda")
    descriptor = tmp_path / "base-lambda.json"
    base_image, _ = Layout(base_dir).resolve()
    write_descriptor(descriptor, base_image, f"{registry}/runtime/base@{base_pushed['digest']}", "lambda")
    on_local_base = mlfn_json(capsys, "build", str(iris_dir), "--base", str(base_dir), "--out", str(tmp_path / "l"))
    shutil.rmtree(base_dir)

    built = mlfn_json(capsys, "build", str(iris_dir), "--base", str(descriptor))
    assert built["base"]["kind"] == "descriptor"
    assert built["digest"] == on_local_base["digest"]  # where the base was found does not change the image
    image, notes = Layout(Path(built["layout"])).resolve()
    assert len(image.layers) == 3 and notes["dev.mlfn.partial"] == "true"
    assert notes["dev.mlfn.base.reference"].startswith(f"{registry}/runtime/base@")

    pushed = mlfn_json(capsys, "push", built["layout"], "--to", f"{registry}/models/on-base")
    assert pushed["mounted"] == [image.layers[0].digest] and len(pushed["uploaded"]) == 3

    elsewhere = tmp_path / "base-elsewhere.json"
    write_descriptor(elsewhere, base_image, f"registry.invalid/runtime/base@{base_pushed['digest']}", "lambda")
    other = mlfn_json(capsys, "build", str(iris_dir), "--base", str(elsewhere), "--out", str(tmp_path / "other"))
    assert main(["push", other["layout"], "--to", f"{registry}/models/orphan"]) == 2
    err = capsys.readouterr().err
    assert "neither in the local layout nor in" in err and "mlfn runtime publish" in err


def test_runtime_publish_writes_a_descriptor_later_builds_mount_from(iris_dir: Path, registry: str, mlfn_home: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from mlfn.cli.packaging.base import base_ref, local_base_dir

    from .test_build import _tiny_base

    _tiny_base(local_base_dir("lambda"), ref=base_ref("lambda"), flavour="lambda")
    published = mlfn_json(capsys, "runtime", "publish", "--flavour", "lambda", "--to", f"{registry}/mlfn/runtime")
    descriptor = json.loads(Path(published["descriptor"]).read_text())
    assert descriptor["reference"] == published["reference"] and published["reference"].startswith(registry)
    assert Path(published["descriptor"]) == local_base_dir("lambda").parent / "base-lambda.json"

    built = mlfn_json(capsys, "build", str(iris_dir))
    assert built["base"]["kind"] == "layout" and built["base"]["reference"] == published["reference"]
    pushed = mlfn_json(capsys, "push", built["layout"], "--to", f"{registry}/models/iris-on-runtime")
    assert len(pushed["mounted"]) == 1 and len(pushed["uploaded"]) == 3
