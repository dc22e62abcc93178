"""The offline runtime base: a Debian bookworm root filesystem from debootstrap (its python3 is 3.11, like
Lambda's), the runtime's pinned wheels and mlfn itself, turned into an OCI image by mlfn's own layer writer.

No Docker engine and no public base image are needed, only Debian's archive and PyPI. Three layers, from the
least to the most often changed: the OS (cached between builds and shared by both flavours), the Python
packages (/opt/mlfn/python), and mlfn (/opt/mlfn/app). The GPU flavour built this way has no CUDA (none can be
fetched here): it runs the container entry point on CPU onnxruntime and is labelled `dev.mlfn.accelerator=cpu`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlfn.runtime import __version__

from . import digests
from .dependencies import GLIBC_LABEL, PYTHON_LABEL, ImagePlatform
from .layer import Entry, Layer, rootfs_entries, write_layer
from .oci import DOCKER_LAYER, DOCKER_MANIFEST, Descriptor, Image, Layout, canonical_json, make_manifest
from .own_files import mlfn_wheel, package_file
from .progress import Say

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "libgomp1", "ca-certificates")
# Left out of the OS layer: caches, docs, translations; only the mount points of the virtual filesystems stay.
PRUNE = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
         "usr/share/locale", "var/log")
EMPTY_DIRS = ("proc", "sys", "dev", "run", "tmp")
PYTHONPATH = "/opt/mlfn/app:/opt/mlfn/python"
EPOCH = "1970-01-01T00:00:00Z"
# Wheels for the image's Python (CPython 3.11, glibc 2.36 on bookworm), whatever Python runs the build.
WHEEL_TARGET = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                *(f"--platform={p}" for p in ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64",
                                              "manylinux_2_17_x86_64", "manylinux2014_x86_64"))]
# Every layer sets every file's mtime to 0 (reproducible digests), which makes timestamp-based .pyc files stale: the
# image's Python would recompile each module at every cold start and, on a read-only root (Lambda), never keep the
# result. Hash-based .pyc files that are not checked against their source stay valid: the image never changes.
PYC_MODE = "unchecked-hash"
COMMANDS = {
    "lambda": (["/usr/bin/python3", "-m", "awslambdaric"], ["mlfn.runtime.lambda_handler.handler"]),
    "gpu": (["/usr/bin/python3", "-m", "mlfn.runtime.server"], ["serve"]),
}


class OfflineBuildError(Exception):
    """A step of the offline base build failed; the message names the step and its last output line."""


@dataclass(frozen=True)
class BuiltBase:
    image: Image
    layout: Layout
    ref: str
    layers: list[tuple[str, Layer]]


def run_step(step: str, cmd: list[str], say: Say, env: dict[str, str] | None = None) -> None:
    say(f"  {step}: {' '.join(cmd[:6])}{' ...' if len(cmd) > 6 else ''}")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=1800)
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise OfflineBuildError(f"{step} failed (exit {proc.returncode}): {tail}")


def pinned(requirements: Path, name: str) -> str:
    """The `name==version` line of a requirements file."""
    for line in requirements.read_text().splitlines():
        if line.split("==")[0].split("[")[0].strip().lower() == name:
            return line.strip()
    raise OfflineBuildError(f"{requirements}: no pin for {name}")


def debian_rootfs(cache: Path, mirror: str, say: Say) -> Path:
    """A pruned bookworm minbase root filesystem, made once and kept in `cache`."""
    rootfs, done = cache / f"rootfs-{SUITE}", cache / f"rootfs-{SUITE}.complete"
    if done.is_file() and rootfs.is_dir():
        say(f"  debootstrap: reusing {rootfs}")
        return rootfs
    if not shutil.which("debootstrap"):
        raise OfflineBuildError("debootstrap is not installed: run .ci/setup-images.sh (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise OfflineBuildError("debootstrap needs root (it creates device nodes and chroots)")
    shutil.rmtree(rootfs, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    run_step("debootstrap", ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
                         str(rootfs), mirror], say)
    for mount_point in ("dev/pts", "dev", "sys", "proc"):  # debootstrap can leave its mounts behind
        if os.path.ismount(rootfs / mount_point):
            subprocess.run(["umount", str(rootfs / mount_point)], check=False)
    for rel in PRUNE:
        target = rootfs / rel
        if target.is_dir():
            for child in target.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    done.write_text(json.dumps({"suite": SUITE, "mirror": mirror, "packages": PACKAGES, "made": time.time()}))
    return rootfs


def _layer(name: str, entries: list[Any], layout: Layout, say: Say) -> Layer:
    tmp = layout.blobs / f"{name}.tmp"
    layer = write_layer(entries, tmp)
    layout.put_file(tmp, layer.digest, move=True)
    say(f"  layer {name}: {layer.size / 1e6:.1f} MB compressed, {layer.uncompressed_size / 1e6:.1f} MB")
    return Layer(layout.blob_path(layer.digest), layer.digest, layer.size, layer.diff_id,
                 layer.uncompressed_size, layer.entries)


def _cached_layer(name: str, key: str, make: Callable[[], list[Entry]], cache: Path, layout: Layout,
                  say: Say) -> Layer:
    """A layer kept in `cache` under `key` (what it was made from) and reused while the key is unchanged, so its
    digest stays the same and a re-publish uploads nothing for it."""
    record = cache / f"layer-{name}-{digests.hex_of(key)[:16]}.json"
    store = Layout(cache / "layers").init()
    if record.is_file():
        d = json.loads(record.read_text())
        if store.has_blob(d["digest"]):
            layout.put_file(store.blob_path(d["digest"]), d["digest"])
            say(f"  layer {name}: reusing {d['digest'][:19]} ({d['size'] / 1e6:.1f} MB)")
            return Layer(layout.blob_path(d["digest"]), d["digest"], d["size"], d["diff_id"],
                         d["uncompressed_size"], d["entries"])
    layer = _layer(name, make(), store, say)
    layout.put_file(layer.path, layer.digest)
    record.write_text(json.dumps({"digest": layer.digest, "size": layer.size, "diff_id": layer.diff_id,
                                  "uncompressed_size": layer.uncompressed_size, "entries": layer.entries}))
    return Layer(layout.blob_path(layer.digest), layer.digest, layer.size, layer.diff_id, layer.uncompressed_size,
                 layer.entries)


def compile_bytecode(step: str, trees: list[str], say: Say, chroot: Path | None = None) -> None:
    """(Re)write the .pyc files of `trees` as `PYC_MODE` .pyc files; with `chroot`, by that root's own python3."""
    python = ["chroot", str(chroot), "/usr/bin/python3"] if chroot is not None else [sys.executable]
    run_step(step, [*python, "-m", "compileall", "-q", "-f", "--invalidation-mode", PYC_MODE, *trees], say)


def _os_entries(rootfs: Path, say: Say) -> list[Entry]:
    trees = sorted(f"/usr/lib/{p.name}" for p in (rootfs / "usr" / "lib").glob("python3*") if p.is_dir())
    compile_bytecode("os bytecode", trees, say, chroot=rootfs)
    return rootfs_entries(rootfs, skip=EMPTY_DIRS)


def _python_packages(requirements: list[str], dest: Path, say: Say) -> list[Entry]:
    run_step("runtime wheels", [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                *WHEEL_TARGET, "--target", str(dest), *requirements], say)
    compile_bytecode("runtime bytecode", [str(dest)], say)
    return rootfs_entries(dest, prefix="opt/mlfn/python")


def build_offline_base(flavour: str, out: Path, *, cache: Path, say: Say,
                       mirror: str = DEFAULT_MIRROR, ref: str) -> BuiltBase:
    rootfs = debian_rootfs(cache, mirror, say)
    layout = Layout(out).init()
    with tempfile.TemporaryDirectory(prefix="mlfn-base-") as tmp_name:
        tmp = Path(tmp_name)
        requirements = package_file("mlfn.runtime", "requirements.txt")
        pins = [line.strip() for line in requirements.read_text().splitlines() if line.strip()[:1].isalnum()]
        if flavour == "lambda":
            pins.append(pinned(package_file("mlfn.cli", "requirements.txt"), "awslambdaric"))
        wheel = mlfn_wheel(tmp / "wheels", say)
        run_step("mlfn", [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          "--no-deps", "--target", str(tmp / "app"), str(wheel)], say)
        compile_bytecode("mlfn bytecode", [str(tmp / "app")], say)
        os_key = digests.of_bytes((cache / f"rootfs-{SUITE}.complete").read_bytes() + PYC_MODE.encode())
        py_key = digests.of_bytes(canonical_json([pins, WHEEL_TARGET, PYC_MODE]))
        layers = [
            ("os", _cached_layer("os", os_key, lambda: _os_entries(rootfs, say), cache, layout, say)),
            ("python", _cached_layer("python", py_key, lambda: _python_packages(pins, tmp / "python", say), cache,
                                     layout, say)),
            ("mlfn", _layer("mlfn", rootfs_entries(tmp / "app", prefix="opt/mlfn/app"), layout, say)),
        ]
    entrypoint, cmd = COMMANDS[flavour]
    inner: dict[str, Any] = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", f"PYTHONPATH={PYTHONPATH}",
                "PYTHONDONTWRITEBYTECODE=1", "LANG=C.UTF-8", "MLFN_MODEL_DIR=/opt/mlfn/model"],
        "Entrypoint": entrypoint, "Cmd": cmd, "WorkingDir": "/opt/mlfn",
        "Labels": {"dev.mlfn.flavour": flavour, "dev.mlfn.version": __version__,
                   "dev.mlfn.base.builder": f"debootstrap {SUITE} minbase",
                   "dev.mlfn.accelerator": "cpu", "org.opencontainers.image.title": ref,
                   PYTHON_LABEL: ImagePlatform.python, GLIBC_LABEL: ImagePlatform.glibc},  # bookworm's
    }
    if flavour == "gpu":
        inner["ExposedPorts"] = {"8080/tcp": {}}
    config = canonical_json({
        "architecture": "amd64", "os": "linux", "created": EPOCH, "config": inner,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for _, layer in layers]},
        "history": [{"created": EPOCH, "created_by": f"mlfn runtime build ({name} layer)"} for name, _ in layers],
    })
    image = Image(make_manifest(config, [Descriptor(DOCKER_LAYER, layer.digest, layer.size) for _, layer in layers]),
                  DOCKER_MANIFEST, config)
    layout.tag(ref, image)
    layout.collect_garbage()
    return BuiltBase(image, layout, ref, layers)
