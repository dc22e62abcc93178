"""The emulator's ECR keeps what is pushed to it: moto's ECR records only each layer's size, so the bytes of every
completed layer upload (layers and the image config) and every manifest PutImage stores are also written, content
addressed, to the emulator's registry storage (`registry_storage`), where the data plane unpacks an image from
(`image_rootfs`). Nothing is written without a state directory (`STORES.state_dir`, set by the control plane).
`install()` wraps moto's `ECRBackend.complete_layer_upload` and `put_image`, and makes
`batch_check_layer_availability` forget a layer or image whose bytes are not in the storage (so a push sends it
again); tests/local_data/test_image_sandboxes.py fails loudly when a moto upgrade changes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from moto.ecr.models import ECRBackend

from .emulated_stores import STORES
from .registry_storage import blob_path, tag_path

_installed = False


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:16]}.", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def store_blob(state: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = blob_path(state, digest)
    if not path.is_file():
        _write_atomic(path, data)
    return digest


def _complete_layer_upload(original: Any) -> Any:
    def complete_layer_upload(self: ECRBackend, repository_name: str, upload_id: str, layer_digests: list[str],
                              registry_id: str | None = None) -> dict[str, Any]:
        repository = self._get_repository(repository_name, registry_id)
        upload = repository.uploads.get(upload_id)
        data = bytes(upload.layer_parts) if upload is not None else b""
        result: dict[str, Any] = original(self, repository_name, upload_id, layer_digests, registry_id)
        if STORES.state_dir is not None:
            store_blob(STORES.state_dir, data)
        return result

    return complete_layer_upload


def _put_image(original: Any) -> Any:
    def put_image(self: ECRBackend, repository_name: str, image_manifest: str, image_tag: str,
                  image_manifest_mediatype: str | None = None, digest: str | None = None) -> Any:
        image = original(self, repository_name, image_manifest, image_tag, image_manifest_mediatype, digest)
        if STORES.state_dir is not None:
            stored = store_blob(STORES.state_dir, image_manifest.encode())
            if image_tag:
                _write_atomic(tag_path(STORES.state_dir, repository_name, image_tag), stored.encode())
        return image

    return put_image


def _stored(state: Path, image: Any) -> bool:
    try:
        return blob_path(state, image.image_digest).is_file()
    except ValueError:
        return True


def _batch_check_layer_availability(original: Any) -> Any:
    def batch_check_layer_availability(self: ECRBackend, repository_name: str, layer_digests: list[str],
                                       registry_id: str | None = None) -> dict[str, Any]:
        if STORES.state_dir is not None:  # a layer or image whose bytes are gone (another state directory) is not
            repository = self._get_repository(repository_name, registry_id)  # there: a push sends it again
            for digest in list(repository.layers):
                with contextlib.suppress(ValueError):
                    if not blob_path(STORES.state_dir, digest).is_file():
                        del repository.layers[digest]
            repository.images = [image for image in repository.images if _stored(STORES.state_dir, image)]
        result: dict[str, Any] = original(self, repository_name, layer_digests, registry_id)
        return result

    return batch_check_layer_availability


def install() -> None:
    """Keep pushed bytes in the state directory (idempotent)."""
    global _installed
    if _installed:
        return
    ECRBackend.complete_layer_upload = _complete_layer_upload(ECRBackend.complete_layer_upload)  # type: ignore
    ECRBackend.put_image = _put_image(ECRBackend.put_image)  # type: ignore[method-assign]
    ECRBackend.batch_check_layer_availability = _batch_check_layer_availability(  # type: ignore[method-assign]
        ECRBackend.batch_check_layer_availability)
    _installed = True
