"""OCI image data: media types, descriptors, canonical JSON, and the image layout directory on disk.

An image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md) is a folder holding
`oci-layout`, `index.json` and `blobs/sha256/<hex>`. Every JSON document mlfn writes is canonical (sorted keys,
no spaces), so the same content always gives the same digest.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import digests

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (MANIFEST, DOCKER_MANIFEST)
REF_NAME = "org.opencontainers.image.ref.name"
# Set on an index entry whose image references layers this layout does not hold (a declared remote base).
PARTIAL = "dev.mlfn.partial"
# Set on an index entry whose base was published there (registry reference): pushes mount its layers from it.
BASE_REFERENCE = "dev.mlfn.base.reference"
BASE_LAYERS = "dev.mlfn.base.layers"  # how many of the image's first layers are the base's


class LayoutError(Exception):
    """A folder that is not a readable OCI image layout, or lacks what was asked of it."""


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Descriptor:
        return cls(d["mediaType"], d["digest"], int(d["size"]), tuple(sorted((d.get("annotations") or {}).items())))


@dataclass(frozen=True)
class Image:
    """One image as plain data: its manifest (raw bytes, so the digest stays exact), config and layers."""

    manifest_bytes: bytes
    manifest_media_type: str
    config_bytes: bytes

    @property
    def digest(self) -> str:
        return digests.of_bytes(self.manifest_bytes)

    @property
    def manifest(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.manifest_bytes)
        return value

    @property
    def config(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.config_bytes)
        return value

    @property
    def config_descriptor(self) -> Descriptor:
        return Descriptor.from_json(self.manifest["config"])

    @property
    def layers(self) -> list[Descriptor]:
        return [Descriptor.from_json(d) for d in self.manifest["layers"]]


def make_manifest(config_bytes: bytes, layers: list[Descriptor], annotations: dict[str, str] | None = None) -> bytes:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": Descriptor(CONFIG, digests.of_bytes(config_bytes), len(config_bytes)).to_json(),
        "layers": [d.to_json() for d in layers],
    }
    if annotations:
        manifest["annotations"] = annotations
    return canonical_json(manifest)


class Layout:
    """An OCI image layout folder: content-addressed blobs plus an index naming images by ref."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    def exists(self) -> bool:
        return (self.root / "oci-layout").is_file() and (self.root / "index.json").is_file()

    def init(self) -> Layout:
        self.blobs.mkdir(parents=True, exist_ok=True)
        if not (self.root / "oci-layout").exists():
            (self.root / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        if not (self.root / "index.json").exists():
            self._write_index([])
        return self

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digests.hex_of(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise LayoutError(f"{self.root}: blob {digest} is missing") from None

    def put_bytes(self, data: bytes) -> Descriptor:
        digest = digests.of_bytes(data)
        path = self.blob_path(digest)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return Descriptor("", digest, len(data))

    def put_file(self, source: Path, digest: str, move: bool = False) -> Path:
        """Store a file under its (already computed) digest; hard-link when it can, else copy (or move)."""
        path = self.blob_path(digest)
        if path.exists():
            if move:
                source.unlink()
            return path
        if move:
            source.replace(path)
            return path
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        tmp.replace(path)
        return path

    def _read_index(self) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads((self.root / "index.json").read_bytes())
        except (FileNotFoundError, json.JSONDecodeError) as exc:
            raise LayoutError(f"{self.root}: not an OCI image layout ({exc})") from None
        return value

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}
        tmp = self.root / "index.json.tmp"
        tmp.write_bytes(canonical_json(index))
        tmp.replace(self.root / "index.json")

    def entries(self) -> list[dict[str, Any]]:
        manifests: list[dict[str, Any]] = self._read_index().get("manifests", [])
        return manifests

    def tag(self, ref: str, image: Image, annotations: dict[str, str] | None = None) -> None:
        """Store the image's manifest and config and name it `ref` in index.json (replacing an older `ref`)."""
        self.put_bytes(image.config_bytes)
        self.put_bytes(image.manifest_bytes)
        entry = Descriptor(image.manifest_media_type, image.digest, len(image.manifest_bytes)).to_json()
        entry["annotations"] = {REF_NAME: ref, **(annotations or {})}
        kept = [m for m in self.entries() if (m.get("annotations") or {}).get(REF_NAME) != ref]
        self._write_index(sorted([*kept, entry], key=lambda m: m["annotations"].get(REF_NAME, "")))

    def resolve(self, ref: str | None = None) -> tuple[Image, dict[str, str]]:
        """The image named `ref` (or the only one), with its index annotations."""
        entries = self.entries()
        if ref is not None:
            entries = [m for m in entries if (m.get("annotations") or {}).get(REF_NAME) == ref]
        if not entries:
            raise LayoutError(f"{self.root}: no image" + (f" named {ref!r}" if ref else ""))
        if len(entries) > 1:
            names = ", ".join(sorted((m.get("annotations") or {}).get(REF_NAME, "?") for m in entries))
            raise LayoutError(f"{self.root}: holds several images ({names}); name one")
        entry = entries[0]
        if entry["mediaType"] not in MANIFEST_TYPES:
            raise LayoutError(f"{self.root}: {entry['mediaType']} is not a single-platform image manifest")
        manifest_bytes = self.read_blob(entry["digest"])
        manifest = json.loads(manifest_bytes)
        image = Image(manifest_bytes, entry["mediaType"], self.read_blob(manifest["config"]["digest"]))
        return image, dict(entry.get("annotations") or {})

    def collect_garbage(self) -> int:
        """Delete blobs no image in the index refers to (older model layers); return how many."""
        keep: set[str] = set()
        for entry in self.entries():
            keep.add(entry["digest"])
            manifest = json.loads(self.read_blob(entry["digest"]))
            keep.add(manifest["config"]["digest"])
            keep.update(d["digest"] for d in manifest.get("layers", []))
        removed = 0
        for path in self.blobs.iterdir():
            if f"sha256:{path.name}" not in keep:
                path.unlink()
                removed += 1
        return removed

    def missing_blobs(self, image: Image) -> list[Descriptor]:
        return [d for d in image.layers if not self.has_blob(d.digest)]
