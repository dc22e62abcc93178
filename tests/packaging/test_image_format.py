"""Every image mlfn builds and pushes has Docker image manifest v2 schema 2 media types (SageMaker's CreateModel
refuses OCI manifests), read back by clients mlfn did not write: skopeo from a registry, boto3 from ECR. Builds stay
reproducible, and the local layout stays readable by skopeo and umoci (through its OCI twin)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import boto3
import pytest

from mlfn.cli.packaging.base import base_ref, local_base_dir

from .helpers import mlfn_json, run
from .test_build import _tiny_base

DOCKER = {
    "manifest": "application/vnd.docker.distribution.manifest.v2+json",
    "config": "application/vnd.docker.container.image.v1+json",
    "layer": "application/vnd.docker.image.rootfs.diff.tar.gzip",
}


def _assert_docker_v2s2(raw: dict[str, object]) -> None:
    assert raw["mediaType"] == DOCKER["manifest"] and raw["schemaVersion"] == 2
    assert raw["config"]["mediaType"] == DOCKER["config"]  # type: ignore[index]
    assert {layer["mediaType"] for layer in raw["layers"]} == {DOCKER["layer"]}  # type: ignore[attr-defined]


def test_registry_images_are_docker_v2s2_and_reproducible(iris_dir: Path, tmp_path: Path, registry: str,
                                                          skopeo: str, umoci: str, mlfn_home: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _tiny_base(local_base_dir("lambda"), ref=base_ref("lambda"), flavour="lambda")  # an OCI image, as tools write
    published = mlfn_json(capsys, "runtime", "publish", "--flavour", "lambda", "--to", f"{registry}/mlfn/runtime")
    base_raw = json.loads(run(skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{published['reference']}"))
    _assert_docker_v2s2(base_raw)

    other = tmp_path / "elsewhere" / "iris"
    shutil.copytree(iris_dir, other)
    first = mlfn_json(capsys, "build", str(iris_dir), "--out", str(tmp_path / "one"))
    second = mlfn_json(capsys, "build", str(other), "--out", str(tmp_path / "two"))
    assert first["digest"] == second["digest"]

    pushed = mlfn_json(capsys, "push", str(iris_dir), "--to", f"{registry}/models/iris-v2s2:v1")
    assert pushed["digest"] == first["digest"] and pushed["mounted"]
    raw_text = run(skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{registry}/models/iris-v2s2:v1")
    assert "sha256:" + hashlib.sha256(raw_text.strip().encode()).hexdigest() == first["digest"]
    raw = json.loads(raw_text)
    _assert_docker_v2s2(raw)
    assert raw["layers"][0]["digest"] == base_raw["layers"][0]["digest"]  # the base's layer, re-described

    layout = f"{tmp_path / 'one'}:iris"
    assert json.loads(run(skopeo, "inspect", f"oci:{layout}"))["Labels"]["dev.mlfn.model.name"] == "iris"
    run(umoci, "unpack", "--image", layout, str(tmp_path / "bundle"))
    model = tmp_path / "bundle" / "rootfs" / "opt" / "mlfn" / "model" / "model.onnx"
    assert model.read_bytes() == (iris_dir / "model.onnx").read_bytes()


def test_ecr_stores_a_docker_v2s2_manifest(iris_dir: Path, aws: str, mlfn_home: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pushed = mlfn_json(capsys, "push", str(iris_dir), "--to", "ecr:iris-v2s2", "--tag", "v1")
    image = boto3.client("ecr").batch_get_image(repositoryName="iris-v2s2",
                                                imageIds=[{"imageDigest": pushed["digest"]}])["images"][0]
    assert image["imageManifestMediaType"] == DOCKER["manifest"]
    _assert_docker_v2s2(json.loads(image["imageManifest"]))
