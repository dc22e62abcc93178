"""The emulator's registry storage: every layer pushed to its ECR, content-addressed under
`<state>/registry/blobs/sha256/<hex>` (moto's ECR keeps only the layers' sizes), and the model folder a function's
`ImageUri` names, unpacked from those layers.

    put_blob(state, data)                               # the control plane, on CompleteLayerUpload
    folder = model_dir_for(state, manifest, digest)     # the data plane: <state>/models/<digest hex>/
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..image_contents import unpack_model

ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
                       r"(?P<repo>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


class ImageError(ValueError):
    """An image whose layers the emulator's registry does not hold, or a manifest it cannot read."""


def blob_path(state: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return state / "registry" / "blobs" / algorithm / hexdigest


def put_blob(state: Path, data: bytes) -> str:
    """Store `data` under its sha256 digest (atomically; an existing blob is kept) and return the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = blob_path(state, digest)
    if path.is_file():
        return digest
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".blob-", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return digest


@dataclass(frozen=True)
class _Layer:
    path: str


@dataclass(frozen=True)
class _Image:
    digest: str
    layers: list[_Layer]


def model_dir_for(state: Path, manifest: str, digest: str) -> Path:
    """The model folder (/opt/mlfn/model) of the image with this manifest, unpacked once per digest."""
    try:
        layers = [str(layer["digest"]) for layer in json.loads(manifest).get("layers", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ImageError(f"image {digest}: unreadable manifest ({exc})") from None
    missing = [d for d in layers if not blob_path(state, d).is_file()]
    if missing:
        raise ImageError(f"image {digest}: layer {missing[0]} is not in the emulator's registry (push it again)")
    image = _Image(digest, [_Layer(str(blob_path(state, d))) for d in layers])
    return unpack_model(image, state / "models")
