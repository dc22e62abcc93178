"""The moto internals the emulator's control plane reaches into for the data plane, in one place.

- ECR: moto keeps only the size of an uploaded layer; `CompleteLayerUpload` here also stores its bytes in the
  emulator's registry storage (`image_store`), so the data plane can run what a function's `ImageUri` names.
- ECR: pushing an image with a tag another image holds moves the tag and leaves that image untagged (moto deletes
  it), so a function still running the previous image keeps it (what a rollback needs).
- Lambda: `delete_function` also forgets the emulator's Function URLs and provisioned concurrency (`lambda_api`).

`install(state_dir)` applies them (idempotent); `check()` raises `MotoChanged` naming what a moto upgrade removed or
renamed, and tests/local_control/test_moto_adapter.py calls it, so such an upgrade fails loudly instead of silently
serving nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moto.awslambda.models import LambdaBackend
from moto.ecr.models import ECRBackend

from . import image_store

# (owner, attribute, the parameters the emulator passes or reads) - what a moto upgrade must keep
REQUIRED: tuple[tuple[type, str, tuple[str, ...]], ...] = (
    (ECRBackend, "complete_layer_upload", ("repository_name", "upload_id", "layer_digests", "registry_id")),
    (ECRBackend, "_get_repository", ("name", "registry_id")),
    (ECRBackend, "put_image", ("repository_name", "image_manifest", "image_tag", "image_manifest_mediatype",
                               "digest")),
    (LambdaBackend, "delete_function", ("function_name", "qualifier")),
)


class MotoChanged(RuntimeError):
    """moto no longer has an internal the emulator patches."""


def check() -> None:
    """Raise `MotoChanged` unless every patched moto internal still has the shape the emulator relies on."""
    for owner, name, params in REQUIRED:
        target = getattr(owner, name, None)
        if not callable(target):
            raise MotoChanged(f"moto's {owner.__name__}.{name} is gone: the emulator's patch needs updating")
        have = set(inspect.signature(target).parameters)
        if not set(params) <= have:
            raise MotoChanged(f"moto's {owner.__name__}.{name} no longer takes {sorted(set(params) - have)}")
    import moto.ecr.models as ecr_models

    if "uploads" not in inspect.getsource(ecr_models.Repository.__init__) or not hasattr(
            ecr_models, "LayerUpload") or "layer_parts" not in inspect.getsource(ecr_models.LayerUpload):
        raise MotoChanged("moto's ECR no longer keeps uploads as Repository.uploads[id].layer_parts")


_originals: dict[str, Callable[..., Any]] = {}
_state: list[Path] = []  # the state directory whose registry storage receives layers (empty: none)


def set_state_dir(state: Path | None) -> None:
    _state[:] = [state] if state is not None else []


def _complete_layer_upload(self: ECRBackend, repository_name: str, upload_id: str, layer_digests: list[str],
                           registry_id: str | None = None) -> dict[str, Any]:
    repository = self._get_repository(repository_name, registry_id)
    upload = repository.uploads.get(upload_id)
    data = bytes(upload.layer_parts) if upload is not None else b""
    result: dict[str, Any] = _originals["complete_layer_upload"](
        self, repository_name, upload_id, layer_digests, registry_id)
    if _state and upload is not None:
        image_store.put_blob(_state[0], data)
    return result


def _put_image(self: ECRBackend, repository_name: str, image_manifest: str, image_tag: str,
               image_manifest_mediatype: str | None = None, digest: str | None = None) -> Any:
    repository = self.repositories.get(repository_name)
    before = list(repository.images) if repository is not None else []
    image = _originals["put_image"](self, repository_name, image_manifest, image_tag, image_manifest_mediatype, digest)
    for old in before:
        if repository is not None and old not in repository.images:  # its only tag moved: keep it, untagged
            old.image_tags, old.image_tag = [], None
            repository.images.insert(0, old)
    return image


def install(state: Path | None, delete_function: Callable[..., Any]) -> None:
    """Apply the patches (once) and send layers to `state`'s registry storage (None: keep none)."""
    check()
    set_state_dir(state)
    if not _originals:
        _originals["complete_layer_upload"] = ECRBackend.complete_layer_upload
        _originals["delete_function"] = LambdaBackend.delete_function
        _originals["put_image"] = ECRBackend.put_image
        ECRBackend.complete_layer_upload = _complete_layer_upload  # type: ignore[method-assign]
        ECRBackend.put_image = _put_image  # type: ignore[method-assign]
        LambdaBackend.delete_function = delete_function  # type: ignore[method-assign]


def moto_delete_function(backend: LambdaBackend, function_name: str, qualifier: str | None) -> None:
    """moto's own delete_function (before the emulator's patch)."""
    original = _originals.get("delete_function", LambdaBackend.delete_function)
    original(backend, function_name, qualifier)
