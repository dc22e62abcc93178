"""The emulator's one ECR byte store: what is pushed to its ECR (written by the control plane's ECR patch in
`moto_adapter`; moto keeps only layer sizes), read by the data plane (`image_rootfs`), laid out as a registry's
storage: content-addressed blobs and one file per tag.

    <state>/ecr/blobs/sha256/<hex>                     a layer, config or manifest, named by its sha256
    <state>/ecr/repositories/<repository>/tags/<tag>   the manifest digest the tag points at
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

# ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY[:TAG][@DIGEST]: an image in (the emulator's) ECR
ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
                       r"(?P<repo>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def registry_root(state: Path) -> Path:
    return state / "ecr"


def blob_path(state: Path, digest: str) -> Path:
    algorithm, _, hex_part = digest.partition(":")
    if algorithm != "sha256" or len(hex_part) != 64 or not all(c in "0123456789abcdef" for c in hex_part):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return registry_root(state) / "blobs" / "sha256" / hex_part


def tag_path(state: Path, repository: str, tag: str) -> Path:
    if ".." in repository.split("/") or "/" in tag or tag in ("", ".", ".."):
        raise ValueError(f"not a repository and tag: {repository}:{tag}")
    return registry_root(state) / "repositories" / repository / "tags" / tag


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:16]}.", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def store_blob(state: Path, data: bytes) -> str:
    """Keep `data` under its sha256 digest (atomically; an existing blob is kept) and return the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = blob_path(state, digest)
    if not path.is_file():
        _write_atomic(path, data)
    return digest


def store_tag(state: Path, repository: str, tag: str, digest: str) -> None:
    """Point `repository:tag` at the manifest `digest`."""
    _write_atomic(tag_path(state, repository, tag), digest.encode())
