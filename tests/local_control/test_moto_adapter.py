"""The moto internals the emulator patches sit behind `moto_adapter`: this fails loudly when a moto upgrade removes or
reshapes one, and proves the ECR patch keeps what was pushed (moto itself keeps only layer sizes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import boto3
import pytest
from moto.ecr.models import ECRBackend

from mlfn.cli.local import moto_adapter
from mlfn.cli.local.image_store import blob_path


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
