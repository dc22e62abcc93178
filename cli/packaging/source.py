"""What a push sends: an image from an OCI layout, with a way to read each blob it holds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .oci import BASE_LAYERS, BASE_REFERENCE, Descriptor, Image, Layout

CHUNK = 8 << 20


class PushError(Exception):
    """A push that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class PushSource:
    image: Image
    layout: Layout
    ref: str
    base_reference: str = ""  # where the base was published (its layers can be mounted from there)
    base_layers: int = 0  # how many of the first layers are the base's

    @classmethod
    def from_layout(cls, path: Path, ref: str | None = None) -> PushSource:
        layout = Layout(path)
        image, annotations = layout.resolve(ref)
        count = annotations.get(BASE_LAYERS, "0")
        return cls(image, layout, annotations.get("org.opencontainers.image.ref.name", ref or ""),
                   annotations.get(BASE_REFERENCE, ""), int(count) if count.isdigit() else 0)

    def blobs(self) -> list[tuple[Descriptor, str]]:
        """Layers then config, each with a word for progress lines."""
        return [*((d, "layer") for d in self.image.layers), (self.image.config_descriptor, "config")]

    def has(self, desc: Descriptor) -> bool:
        return self.layout.has_blob(desc.digest)

    def path(self, desc: Descriptor) -> Path:
        return self.layout.blob_path(desc.digest)

    def chunks(self, desc: Descriptor, size: int = CHUNK) -> Iterator[bytes]:
        with self.path(desc).open("rb") as f:
            while chunk := f.read(size):
                yield chunk
