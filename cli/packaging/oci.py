"""Image data: media types, descriptors, canonical JSON, and the OCI image layout directory on disk.

Every image mlfn writes and pushes uses Docker image manifest v2 schema 2 media types (manifest, config, layers):
SageMaker's CreateModel refuses OCI image manifests ("Unsupported manifest media type
application/vnd.oci.image.manifest.v1+json"), while Lambda, ECS and ECR take both. An OCI image read from another
tool's layout is converted (same config and layers, so only the manifest's digest changes).

An image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md) is a folder holding
`oci-layout`, `index.json` and `blobs/sha256/<hex>`. skopeo 1.9 and umoci 0.4 only read index entries that are OCI
manifests, so each image is named in index.json by an OCI twin of its manifest (same config and layers) that
records the Docker manifest's digest (`DOCKER_IMAGE`); mlfn reads and pushes the Docker manifest. Every JSON
document mlfn writes is canonical (sorted keys, no spaces), so the same content always gives the same digest.
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
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
MANIFEST_TYPES = (MANIFEST, DOCKER_MANIFEST)
# OCI -> Docker v2s2 media types of what a manifest references (and back for the layout's OCI twin)
TO_DOCKER = {CONFIG: DOCKER_CONFIG, LAYER_GZIP: DOCKER_LAYER, LAYER_TAR: DOCKER_LAYER_TAR}
TO_OCI = {docker: oci for oci, docker in TO_DOCKER.items()}
REF_NAME = "org.opencontainers.image.ref.name"
# Set on an index entry whose image references layers this layout does not hold (a declared remote base).
PARTIAL = "dev.mlfn.partial"
# Set on an index entry whose base was published there (registry reference): pushes mount its layers from it.
BASE_REFERENCE = "dev.mlfn.base.reference"
BASE_LAYERS = "dev.mlfn.base.layers"  # how many of the image's first layers are the base's
# Set on an index entry (an OCI twin for skopeo and umoci): the digest of the image's Docker v2s2 manifest.
DOCKER_IMAGE = "dev.mlfn.docker.manifest"


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


def make_manifest(config_bytes: bytes, layers: list[Descriptor], media_type: str = DOCKER_MANIFEST) -> bytes:
    """A canonical image manifest of `media_type` (Docker v2s2 unless asked for the OCI twin); the config's and
    layers' media types follow it."""
    types = TO_DOCKER if media_type == DOCKER_MANIFEST else TO_OCI
    config_type = DOCKER_CONFIG if media_type == DOCKER_MANIFEST else CONFIG
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": Descriptor(config_type, digests.of_bytes(config_bytes), len(config_bytes)).to_json(),
        "layers": [Descriptor(types.get(d.media_type, d.media_type), d.digest, d.size).to_json() for d in layers],
    }
    return canonical_json(manifest)


def as_docker(image: Image) -> Image:
    """The image with a Docker v2s2 manifest: itself when it has one, else the same config and layers re-described."""
    if image.manifest_media_type == DOCKER_MANIFEST:
        return image
    for d in image.layers:
        if d.media_type not in TO_DOCKER and d.media_type not in TO_OCI:
            raise LayoutError(f"layer {d.digest} is {d.media_type}, which a Docker image manifest v2 schema 2 cannot "
                              "describe (SageMaker needs one): rebuild the image with gzip layers")
    return Image(make_manifest(image.config_bytes, image.layers), DOCKER_MANIFEST, image.config_bytes)


def oci_twin(image: Image) -> Image:
    """The OCI manifest of the same config and layers, which skopeo and umoci read from a layout."""
    return Image(make_manifest(image.config_bytes, image.layers, MANIFEST), MANIFEST, image.config_bytes)


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

    def tag(self, ref: str, image: Image, annotations: dict[str, str] | None = None) -> Image:
        """Store the image (as Docker v2s2) and its OCI twin and name it `ref` in index.json (replacing an older
        `ref`); return the stored image."""
        image = as_docker(image)
        twin = oci_twin(image)
        self.put_bytes(image.config_bytes)
        self.put_bytes(image.manifest_bytes)
        self.put_bytes(twin.manifest_bytes)
        entry = Descriptor(MANIFEST, twin.digest, len(twin.manifest_bytes)).to_json()
        entry["annotations"] = {REF_NAME: ref, DOCKER_IMAGE: image.digest, **(annotations or {})}
        kept = [m for m in self.entries() if (m.get("annotations") or {}).get(REF_NAME) != ref]
        self._write_index(sorted([*kept, entry], key=lambda m: m["annotations"].get(REF_NAME, "")))
        return image

    def resolve(self, ref: str | None = None) -> tuple[Image, dict[str, str]]:
        """The image named `ref` (or the only one) as Docker v2s2, with its index annotations."""
        entries = self.entries()
        if ref is not None:
            entries = [m for m in entries if (m.get("annotations") or {}).get(REF_NAME) == ref]
        if not entries:
            raise LayoutError(f"{self.root}: no image" + (f" named {ref!r}" if ref else ""))
        if len(entries) > 1:
            names = ", ".join(sorted((m.get("annotations") or {}).get(REF_NAME, "?") for m in entries))
            raise LayoutError(f"{self.root}: holds several images ({names}); name one")
        entry = entries[0]
        annotations = dict(entry.get("annotations") or {})
        if entry["mediaType"] not in MANIFEST_TYPES:
            raise LayoutError(f"{self.root}: {entry['mediaType']} is not a single-platform image manifest")
        digest = annotations.get(DOCKER_IMAGE) or entry["digest"]
        manifest_bytes = self.read_blob(digest)
        manifest = json.loads(manifest_bytes)
        media_type = DOCKER_MANIFEST if DOCKER_IMAGE in annotations else entry["mediaType"]
        image = Image(manifest_bytes, media_type, self.read_blob(manifest["config"]["digest"]))
        return as_docker(image), annotations

    def collect_garbage(self) -> int:
        """Delete blobs no image in the index refers to (older model layers); return how many."""
        keep: set[str] = set()
        for entry in self.entries():
            for digest in (entry["digest"], (entry.get("annotations") or {}).get(DOCKER_IMAGE)):
                if digest:
                    keep.add(digest)
                    manifest = json.loads(self.read_blob(digest))
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
