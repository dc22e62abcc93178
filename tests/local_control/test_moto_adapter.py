"""The moto internals the emulator patches sit behind `moto_adapter`: this fails loudly when a moto upgrade removes or
reshapes one, and proves the ECR patch keeps what was pushed (moto itself keeps only layer sizes)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import boto3
import pytest
from moto.ecr.models import ECRBackend

from mlfn.cli.local import moto_adapter
from mlfn.cli.local.registry_storage import blob_path


def test_every_patched_moto_internal_is_still_there() -> None:
    moto_adapter.check()


def test_a_moto_upgrade_that_renames_an_internal_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_adapter, "REQUIRED", (*moto_adapter.REQUIRED, (ECRBackend, "renamed_in_moto_9", ())))
    with pytest.raises(moto_adapter.MotoChanged, match=r"ECRBackend\.renamed_in_moto_9 is gone"):
        moto_adapter.check()


def test_a_pushed_layer_is_kept_in_the_registry_storage(control_dir: Path) -> None:
    ecr = boto3.client("ecr")
    ecr.create_repository(repositoryName="kept-layers")
    blob = b"layer bytes that moto alone would forget"
    upload = ecr.initiate_layer_upload(repositoryName="kept-layers")["uploadId"]
    ecr.upload_layer_part(repositoryName="kept-layers", uploadId=upload, partFirstByte=0,
                          partLastByte=len(blob) - 1, layerPartBlob=blob)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    ecr.complete_layer_upload(repositoryName="kept-layers", uploadId=upload, layerDigests=[digest])
    assert blob_path(control_dir, digest).read_bytes() == blob


def test_an_image_whose_tag_moved_to_a_new_push_stays_untagged() -> None:
    """ECR keeps an image whose tag moved (ECR lifecycle policies select such 'untagged' images); moto deleted it."""
    ecr = boto3.client("ecr")
    ecr.create_repository(repositoryName="moved-tag")
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    digests = []
    for n in (1, 2):
        manifest = json.dumps({"schemaVersion": 2, "mediaType": docker, "layers": [], "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json", "size": n, "digest": f"sha256:{n:064x}"}})
        digest = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
        ecr.put_image(repositoryName="moved-tag", imageManifest=manifest, imageManifestMediaType=docker,
                      imageTag="latest", imageDigest=digest)
        digests.append(digest)
    first = ecr.batch_get_image(repositoryName="moved-tag", imageIds=[{"imageDigest": digests[0]}])["images"]
    assert len(first) == 1 and "imageTag" not in first[0]["imageId"]
    latest = ecr.batch_get_image(repositoryName="moved-tag", imageIds=[{"imageTag": "latest"}])["images"]
    assert latest[0]["imageId"]["imageDigest"] == digests[1]
