"""Assemble a model's image as OCI data: the base's layers plus two deterministic layers holding the model folder."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlfn.runtime import __version__
from mlfn.runtime.hooks import DEPS_ENV
from mlfn.runtime.model import optimized_path
from mlfn.runtime.spec import CONFIG_FILE, ModelSpec, named_config

from .base import DEFAULT_CMD, DEFAULT_ENTRYPOINT, Base, BaseError
from .dependencies import DEPS_DIR, Dependencies, ImagePlatform, image_dependencies
from .layer import MODEL_PREFIX, Entry, Layer, entries_key, model_entries, split, write_layer
from .oci import (
    BASE_LAYERS,
    BASE_REFERENCE,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    PARTIAL,
    Descriptor,
    Image,
    Layout,
    canonical_json,
    make_manifest,
)
from .optimize import data_file

MODEL_DIR = "/" + MODEL_PREFIX
EPOCH = "1970-01-01T00:00:00Z"  # a fixed creation time: the digest must not depend on when the build ran
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LAYER_CACHE = "mlfn-layers.json"  # content key -> written layer, so an unchanged folder is not compressed again
ARCHITECTURES = {"x86_64": "amd64", "arm64": "arm64"}


@dataclass(frozen=True)
class BuiltImage:
    image: Image
    layers: list[Layer]  # the model's own: [model file, other files]
    layout: Layout
    ref: str
    base: Base
    dependencies: Dependencies | None = None  # the layer of the folder's requirements.txt, between base and model

    @property
    def digest(self) -> str:
        return self.image.digest


def _merge_env(base_env: list[str], extra: Mapping[str, str]) -> list[str]:
    kept = [e for e in base_env if e.split("=", 1)[0] not in extra]
    return kept + [f"{k}={v}" for k, v in extra.items()]


def labels_for(spec: ModelSpec, flavour: str, optimized: bool, base_digest: str = "") -> dict[str, str]:
    labels = {
        "org.opencontainers.image.title": spec.name,
        "dev.mlfn.version": __version__,
        "dev.mlfn.flavour": flavour,
        "dev.mlfn.model.name": spec.name,
        "dev.mlfn.model.target": spec.target,
        "dev.mlfn.model.signature": canonical_json(spec.signature_json()).decode(),
    }
    if spec.settings.description:
        labels["org.opencontainers.image.description"] = spec.settings.description
    if base_digest:  # a label, not a manifest annotation: Docker v2s2 manifests have no annotations
        labels["org.opencontainers.image.base.digest"] = base_digest
    if optimized:
        labels["dev.mlfn.model.optimized"] = optimized_path(spec).relative_to(spec.directory).as_posix()
    return labels


def check_accelerator(spec: ModelSpec, base: Base) -> None:
    """Refuse a `gpu = true` model on a base labelled `dev.mlfn.accelerator=cpu` (the offline gpu flavour: CPU
    onnxruntime, no CUDAExecutionProvider), which would run on the CPU of a GPU instance."""
    labels = (base.config.get("config") or {}).get("Labels") or {}
    if spec.settings.gpu and labels.get("dev.mlfn.accelerator") == "cpu":
        raise BaseError(
            f"{spec.name} has gpu = true but base {base.source} is CPU-only (label dev.mlfn.accelerator=cpu: its "
            "onnxruntime has no CUDAExecutionProvider), so the model would run on the CPU of a GPU instance; "
            "it needs a CUDA base: `mlfn runtime build --flavour gpu --builder docker` or `--builder buildah` "
            "(Dockerfile.gpu: a CUDA image with onnxruntime-gpu), or pass one with --base")


def image_config(spec: ModelSpec, base: Base, layers: list[Layer], optimized: bool,
                 deps: Layer | None = None) -> dict[str, Any]:
    """The base's config extended with the model's environment, command, labels, layers and history entries
    (`deps`, the folder's own Python packages, goes between the base's layers and the model's)."""
    base_cfg = base.config
    inner = dict(base_cfg.get("config") or {})
    flavour = base.flavour
    wanted_arch = ARCHITECTURES[spec.settings.lambda_.architecture] if spec.target == "lambda" else "amd64"
    arch = base_cfg.get("architecture", wanted_arch)
    if arch != wanted_arch:
        raise BaseError(f"the base is {arch} but the model needs {wanted_arch} (lambda.architecture)")
    check_accelerator(spec, base)
    env = {"MLFN_MODEL_DIR": MODEL_DIR, **({DEPS_ENV: DEPS_DIR} if deps else {})}
    inner["Env"] = _merge_env(list(inner.get("Env") or [DEFAULT_PATH]), env)
    inner["Entrypoint"] = inner.get("Entrypoint") or DEFAULT_ENTRYPOINT[flavour]
    inner["Cmd"] = DEFAULT_CMD[flavour]
    base_digest = base.image.digest if base.image else ""
    inner["Labels"] = {**(inner.get("Labels") or {}), **labels_for(spec, flavour, optimized, base_digest)}
    if flavour == "gpu":
        inner["ExposedPorts"] = {**(inner.get("ExposedPorts") or {}), "8080/tcp": {}}
    rootfs = base_cfg.get("rootfs") or {"type": "layers", "diff_ids": []}
    own = [deps, *layers] if deps else layers
    history = [*(base_cfg.get("history") or []),
               *([{"created": EPOCH, "created_by": f"mlfn build {spec.name} (requirements.txt at {DEPS_DIR})",
                   "comment": f"mlfn {__version__}"}] if deps else []),
               *({"created": EPOCH, "created_by": f"mlfn build {spec.name} ({what} at {MODEL_DIR})",
                  "comment": f"mlfn {__version__}"} for what in ("model file", "model folder"))]
    return {
        **{k: v for k, v in base_cfg.items() if k not in ("config", "rootfs", "history", "created")},
        "architecture": arch,
        "os": base_cfg.get("os", "linux"),
        "created": EPOCH,
        "config": inner,
        "rootfs": {"type": "layers", "diff_ids": [*rootfs.get("diff_ids", []), *(layer.diff_id for layer in own)]},
        "history": history,
    }


def _cached_layer(entries: list[Entry], layout: Layout) -> Layer:
    """Write a layer of `entries` into the layout, or reuse the one written before from the same content."""
    cache_file = layout.root / LAYER_CACHE
    try:
        cache: dict[str, dict[str, Any]] = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    key = entries_key(entries)
    hit = cache.get(key)
    if hit and layout.has_blob(hit["digest"]):
        return Layer(layout.blob_path(hit["digest"]), hit["digest"], hit["size"], hit["diff_id"],
                     hit["uncompressed_size"], hit["entries"])
    with tempfile.NamedTemporaryFile(dir=layout.blobs, prefix="layer-", suffix=".tmp", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        layer = write_layer(entries, tmp_path)
        layout.put_file(tmp_path, layer.digest, move=True)
    finally:
        tmp_path.unlink(missing_ok=True)
    cache = {k: v for k, v in cache.items() if layout.has_blob(v["digest"])}
    cache[key] = {"digest": layer.digest, "size": layer.size, "diff_id": layer.diff_id,
                  "uncompressed_size": layer.uncompressed_size, "entries": layer.entries}
    cache_file.write_text(json.dumps(cache, indent=1, sort_keys=True))
    return Layer(layout.blob_path(layer.digest), layer.digest, layer.size, layer.diff_id, layer.uncompressed_size,
                 layer.entries)


def model_layers(spec: ModelSpec, layout: Layout, extra_files: Mapping[str, Path] | None) -> list[Layer]:
    """Two layers at /opt/mlfn/model: the model file (and its optimised graph), then every other file of the
    folder (mlfn.toml, hooks, labels). Editing settings or hooks re-uploads only the small second layer.
    The image's mlfn.toml names the model, so it answers to the same name wherever the folder is unpacked."""
    # A stale optimised graph (or its data file) left in the folder must not ship: the layer's fixed mtimes would
    # make the runtime take it for current. Only what `--optimize` writes (in extra_files) goes in, beside the model.
    optimized = optimized_path(spec).relative_to(spec.directory).as_posix()
    stale = [optimized, data_file(Path(optimized)).as_posix()]
    weights = [f"{MODEL_PREFIX}/{spec.settings.model}", *(f"{MODEL_PREFIX}/{name}" for name in extra_files or {})]
    with tempfile.TemporaryDirectory(prefix="mlfn-config-") as tmp:
        generated = dict(extra_files or {})
        config = named_config(spec.directory, spec.name)
        if config is not None:  # the name comes from the folder's name, which /opt/mlfn/model does not keep
            generated[CONFIG_FILE] = Path(tmp) / CONFIG_FILE
            generated[CONFIG_FILE].write_text(config, encoding="utf-8")
        entries = model_entries(spec.directory, extra=generated, exclude=stale)
        first, rest = split(entries, weights)
        return [_cached_layer(first, layout), _cached_layer(rest, layout)]


def build_model_image(spec: ModelSpec, base: Base, out: Path, *, extra_files: Mapping[str, Path] | None = None,
                      ref: str | None = None) -> BuiltImage:
    """Write the model's image to the OCI layout `out` (created if needed) and name it `ref` (default: its name)."""
    layout = Layout(out).init()
    architecture = spec.settings.lambda_.architecture if spec.target == "lambda" else "x86_64"
    labels = (base.config.get("config") or {}).get("Labels") or {}
    deps = image_dependencies(spec.directory, base.flavour, architecture, layout, platform=ImagePlatform.of(labels))
    deps_layers = [deps.layer] if deps and deps.layer else []
    layers = model_layers(spec, layout, extra_files)
    config_bytes = canonical_json(image_config(spec, base, layers, bool(extra_files), *deps_layers))
    base_layers = base.image.layers if base.image else []
    # Only the base's digest goes into the image (a config label), so the image's digest does not depend on where
    # the base was found (local layout or descriptor); where it was published is kept in the layout's index.
    own = [Descriptor(DOCKER_LAYER, layer.digest, layer.size) for layer in [*deps_layers, *layers]]
    image = Image(make_manifest(config_bytes, [*base_layers, *own]), DOCKER_MANIFEST, config_bytes)
    if base.layout is not None:
        for d in base_layers:
            layout.put_file(base.layout.blob_path(d.digest), d.digest)
    index_notes = {BASE_LAYERS: str(len(base_layers))}
    if base.reference:
        index_notes[BASE_REFERENCE] = base.reference
    if base.kind == "descriptor":
        index_notes[PARTIAL] = "true"
    name = ref or spec.name
    layout.tag(name, image, index_notes)
    layout.collect_garbage()
    return BuiltImage(image, layers, layout, name, base, deps)
