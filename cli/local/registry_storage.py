"""Where the emulator's ECR keeps pushed bytes (written by `ecr_blobs` in the control plane, read by `image_rootfs` in
the data plane), laid out as a registry's storage: content-addressed blobs and one file per tag.

    <state>/ecr/blobs/sha256/<hex>                     a layer, config or manifest, named by its sha256
    <state>/ecr/repositories/<repository>/tags/<tag>   the manifest digest the tag points at
"""

from __future__ import annotations

from pathlib import Path


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
