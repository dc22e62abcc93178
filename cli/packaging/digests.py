"""Content addresses: sha256 digests of bytes, files and streams, in the `sha256:<hex>` form OCI uses."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import BinaryIO

DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
CHUNK = 1 << 20


def of_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def of_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def hex_of(digest: str) -> str:
    """The hex part of a digest, after checking its form (a digest names a file path: never trust it blindly)."""
    if not DIGEST_PATTERN.match(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest.split(":", 1)[1]


def short(digest: str) -> str:
    """`sha256:0123456789ab` for progress lines."""
    return digest[:19]


class HashingWriter:
    """A write-only file object that hashes and counts what passes through to an inner file (or nowhere)."""

    def __init__(self, inner: BinaryIO | None = None) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sha.update(data)
        self.size += len(data)
        if self.inner is not None:
            self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        if self.inner is not None:
            self.inner.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()
