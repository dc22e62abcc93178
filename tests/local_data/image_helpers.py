"""Images for the image-sandbox tests: derive a base with one more layer, build a model image on it, push it to the
emulator's ECR (boto3 against the control plane), as `mlfn deploy --local` does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from mlfn.cli.packaging.layer import rootfs_entries, write_layer
from mlfn.cli.packaging.oci import Descriptor, Image, Layout, canonical_json, make_manifest


def derived_base(base: Path, out: Path, files: dict[str, str], env: dict[str, str], ref: str = "marked",
                 **config_changes: Any) -> Path:
    """`base` plus one layer holding `files` (path in the image -> text), `env` added to its config and
    `config_changes` (e.g. Entrypoint, Cmd, Labels) replacing entries of it."""
    image, _ = Layout(base).resolve()
    root = out.parent / f"rootfs-{out.name}"
    for name, text in files.items():
        (root / name.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / name.lstrip("/")).write_text(text)
    layout = Layout(out).init()
    for desc in image.layers:
        layout.put_file(Layout(base).blob_path(desc.digest), desc.digest)
    layer = write_layer(rootfs_entries(root), out / "layer.tmp")
    layout.put_file(layer.path, layer.digest, move=True)
    config: dict[str, Any] = json.loads(image.config_bytes)
    config["config"]["Env"] = [*config["config"].get("Env", []), *(f"{k}={v}" for k, v in env.items())]
    config["config"].update(config_changes)
    config["rootfs"]["diff_ids"].append(layer.diff_id)
    config["history"] = [*config.get("history", []), {"created": "1970-01-01T00:00:00Z", "created_by": "marker"}]
    config_bytes = canonical_json(config)
    layers = [*image.layers, Descriptor(image.layers[-1].media_type, layer.digest, layer.size)]
    layout.tag(ref, Image(make_manifest(config_bytes, layers), image.manifest_media_type, config_bytes))
    return out


def with_config(built: Any, ref: str, **changes: Any) -> str:
    """Tag in the built image's layout a copy of it whose config has `changes` (e.g. Cmd); returns `ref`."""
    config: dict[str, Any] = json.loads(built.image.config_bytes)
    config["config"].update(changes)
    config_bytes = canonical_json(config)
    built.layout.tag(ref, Image(make_manifest(config_bytes, built.image.layers), built.image.manifest_media_type,
                                config_bytes))
    return ref


def push_built(built: Any, endpoint_url: str, repository: str, ref: str | None = None) -> str:
    """Push a built model image (or the image `ref` of its layout) to the emulator's ECR; its ImageUri (by digest)."""
    from mlfn.cli.packaging import ecr
    from mlfn.cli.packaging.source import PushSource

    client = boto3.client("ecr", endpoint_url=endpoint_url, region_name="us-east-1", aws_access_key_id="mlfn-local",
                          aws_secret_access_key="mlfn-local-secret")
    report = ecr.push(PushSource.from_layout(built.layout.root, ref or built.ref), client, repository, "latest",
                      lambda _line: None)
    return str(report.reference)
