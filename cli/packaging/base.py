"""Which runtime base a model image extends, and where its config and layers come from.

In order: `--base` (an OCI layout folder, `folder:ref`, or a descriptor JSON); the local base that
`mlfn runtime build` wrote to `<MLFN_HOME or .mlfn>/images/base-<flavour>`; the descriptor `mlfn runtime publish`
wrote next to it (`base-<flavour>.json`: the published reference plus the exact manifest and config, so a build can
reference the base's layers by digest without downloading them); a descriptor shipped with mlfn as package data
(`runtime_layer/images/base-<flavour>.json` in the sources); else no base at all: a model-only image that a push
can carry but nothing can run, and the build says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlfn.runtime.spec import ModelSpec

from . import digests
from .oci import MANIFEST_TYPES, Image, Layout, LayoutError

FLAVOURS = ("lambda", "gpu")
BASE_REF_PREFIX = "mlfn-runtime"

# What an image of each flavour starts, when the base does not say (see docs/packaging.md).
DEFAULT_ENTRYPOINT = {"lambda": ["python3", "-m", "awslambdaric"], "gpu": ["python3", "-m", "mlfn.runtime.server"]}
DEFAULT_CMD = {"lambda": ["mlfn.runtime.lambda_handler.handler"], "gpu": ["serve"]}


class BaseError(Exception):
    """A base that cannot be used (unreadable, wrong flavour, wrong architecture)."""


@dataclass(frozen=True)
class Base:
    """A runtime base image as plain data. `layout` holds its blobs when they are stored here."""

    kind: str  # "layout", "descriptor" or "none"
    flavour: str
    source: str  # where it was found, for messages
    image: Image | None = None
    layout: Layout | None = None
    reference: str = ""  # registry reference of a published base (descriptor), e.g. host/repo@sha256:...

    @property
    def config(self) -> dict[str, Any]:
        return self.image.config if self.image else {}

    def describe(self) -> str:
        if self.image is None:
            return "none: model-only image (not runnable until built on a base; run `mlfn runtime build` first)"
        where = "layers stored here" if self.kind == "layout" else "layers referenced by digest, not stored here"
        return f"{self.kind} {self.source} ({self.image.digest}, {len(self.image.layers)} layers, {where})"


def mlfn_home() -> Path:
    return Path(os.environ.get("MLFN_HOME") or ".mlfn")


def images_home() -> Path:
    return mlfn_home() / "images"


def flavour_for(spec: ModelSpec) -> str:
    """Lambda models extend the Lambda base; SageMaker and ECS models the container (GPU) base."""
    return "lambda" if spec.target == "lambda" else "gpu"


def base_ref(flavour: str) -> str:
    from mlfn.runtime import __version__

    return f"{BASE_REF_PREFIX}:{flavour}-{__version__}"


def local_base_dir(flavour: str) -> Path:
    return images_home() / f"base-{flavour}"


def from_layout(path: Path, flavour: str, ref: str | None = None) -> Base:
    layout = Layout(path)
    if not layout.exists():
        raise BaseError(f"{path}: not an OCI image layout (no oci-layout/index.json)")
    try:
        image, annotations = layout.resolve(ref)
    except LayoutError as exc:
        raise BaseError(str(exc)) from None
    if annotations.get("dev.mlfn.partial"):
        raise BaseError(f"{path}: its image lacks layers; a base must hold all its layers")
    missing = layout.missing_blobs(image)
    if missing:
        raise BaseError(f"{path}: layer {missing[0].digest} is missing from the layout")
    name = annotations.get("org.opencontainers.image.ref.name", "")
    return Base("layout", flavour, f"{path}" + (f":{name}" if name else ""), image, layout,
                _published_reference(path, image))


def _published_reference(path: Path, image: Image) -> str:
    """Where `mlfn runtime publish` pushed this very base (its descriptor sits next to the layout), if it did."""
    descriptor = path.parent / f"{path.name}.json"
    try:
        doc = json.loads(descriptor.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    reference = str(doc.get("reference", ""))
    return reference if reference.endswith(f"@{image.digest}") else ""


def write_descriptor(path: Path, base_image: Image, reference: str, flavour: str) -> None:
    """Record a published base: its reference and exact manifest and config (small; commit it)."""
    doc = {
        "flavour": flavour,
        "reference": reference,
        "manifest_media_type": base_image.manifest_media_type,
        "manifest": base_image.manifest_bytes.decode(),
        "config": base_image.config_bytes.decode(),
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def from_descriptor(path: Path, flavour: str) -> Base:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        image = Image(doc["manifest"].encode(), doc["manifest_media_type"], doc["config"].encode())
        reference = str(doc["reference"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BaseError(f"{path}: not a base descriptor ({exc})") from None
    if image.manifest_media_type not in MANIFEST_TYPES:
        raise BaseError(f"{path}: manifest_media_type must be one of {', '.join(MANIFEST_TYPES)}")
    if image.config_descriptor.digest != digests.of_bytes(image.config_bytes):
        raise BaseError(f"{path}: the config does not match the manifest's config digest")
    if "@" in reference and reference.rsplit("@", 1)[1] != image.digest:
        raise BaseError(f"{path}: reference {reference} does not match the manifest's digest {image.digest}")
    return Base("descriptor", doc.get("flavour", flavour), str(path), image, None, reference)


def resolve_base(flavour: str, explicit: str | None = None) -> Base:
    """Find the base for `flavour` (see the module docstring for the order); refuse one labelled for another."""
    base = _find_base(flavour, explicit)
    labelled = (base.config.get("config") or {}).get("Labels", {}).get("dev.mlfn.flavour")
    if labelled and labelled != flavour:
        raise BaseError(f"{base.source} is a {labelled} base but the model needs the {flavour} flavour "
                        f"(target {'lambda' if flavour == 'lambda' else 'sagemaker or ecs'})")
    return Base(base.kind, flavour, base.source, base.image, base.layout, base.reference)


def _find_base(flavour: str, explicit: str | None) -> Base:
    if explicit:
        if explicit == "none":
            return Base("none", flavour, "none")
        path = Path(explicit)
        if path.suffix == ".json" and path.is_file():
            return from_descriptor(path, flavour)
        if path.is_dir():
            return from_layout(path, flavour)
        folder, _, ref = explicit.rpartition(":")
        if folder and Path(folder).is_dir():
            return from_layout(Path(folder), flavour, ref)
        raise BaseError(f"--base {explicit}: expected an OCI layout folder, FOLDER:REF, a descriptor .json or 'none'")
    from .own_files import descriptors_dir

    local = local_base_dir(flavour)
    if Layout(local).exists():
        return from_layout(local, flavour)
    for descriptor in (local.parent / f"{local.name}.json", descriptors_dir() / f"base-{flavour}.json"):
        if descriptor.is_file():
            return from_descriptor(descriptor, flavour)
    return Base("none", flavour, "none")
