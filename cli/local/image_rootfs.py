"""Run the pushed image, not the host's runtime: a function's or endpoint's image (its ImageUri in the emulator's ECR)
is unpacked once per digest into `<state>/images/<hex>/rootfs` and its processes start there, in a chroot of their
own mount namespace (`chroot_exec`), with the image's entrypoint, command, environment and working directory.

    run = prepare(state_dir, "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfn-iris@sha256:...")
    run.isolated        # True: sandboxes start inside run.rootfs; False: run.reason says why not
    run.argv(["serve"]) # the command line that starts the image's entrypoint (with a replaced CMD) in the chroot

Without root, the launcher isolates in a user namespace of its own (rootless: umoci unpacks `--rootless`, the
caller is root inside). Where the image cannot run isolated (no root and no user namespaces, no mount namespace,
umoci missing, the image not in the emulator's registry, or an image of model layers only with no runtime base)
the sandbox falls back to the host's installed `mlfn.runtime` with the image's model folder, and `reason` says
why (deploy output, `mlfn local status`).
`MLFN_LOCAL_ISOLATION=host` asks for the host runtime.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..packaging.oci import Image, Layout
from .registry_storage import blob_path, tag_path

LAUNCHER = Path(__file__).with_name("chroot_exec.py")
TMP_MB = 512  # Lambda's default ephemeral storage (/tmp): EphemeralStorage.Size 512 (512 to 10,240 MB)
HOST = "host runtime"


@dataclass(frozen=True)
class ImageRun:
    """How the processes of one image start."""

    image: str
    rootfs: str = ""  # empty: not isolated
    reason: str = ""  # why not isolated
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = ""
    scratch: str = ""  # an empty folder for a writable (overlay) root; empty: overlays do not work here

    @property
    def isolated(self) -> bool:
        return bool(self.rootfs)

    @property
    def mode(self) -> str:
        """One line for people: which mode runs, and why."""
        if self.isolated:
            spaces = "own mount namespace" + (", user namespace (rootless)" if os.geteuid() != 0 else "")
            return f"image {self.image_name} in a chroot ({spaces}, read-only root, /tmp writable)"
        return f"{HOST} (mlfn.runtime installed on this machine, model folder of the image): {self.reason}"

    @property
    def image_name(self) -> str:
        return self.image.rsplit("/", 1)[-1][:40] if self.image else "-"

    def argv(self, cmd: list[str] | None = None, tmp_mb: int = TMP_MB, writable: bool = False) -> list[str]:
        """The launcher command: the image's ENTRYPOINT followed by `cmd` (default: its CMD), in the chroot; the
        root read-only (Lambda), or `writable` (a container's) when overlays work here."""
        program = [*self.entrypoint, *(self.cmd if cmd is None else cmd)]
        overlay = ["--writable", self.scratch] if writable and self.scratch else []
        return [*_launcher_python(), str(LAUNCHER), *overlay, self.rootfs, self.workdir or "/", str(tmp_mb), "--",
                *program]


class ImageUnavailable(Exception):
    """The image cannot be unpacked; the message says why."""


def parse_uri(uri: str) -> tuple[str, str, str]:
    """`HOST/REPOSITORY[:TAG][@DIGEST]` -> (repository, tag, digest)."""
    _, sep, rest = uri.partition("/")
    if not sep or not rest:
        raise ImageUnavailable(f"{uri!r} is not an image URI (HOST/REPOSITORY[:TAG][@sha256:DIGEST])")
    rest, _, digest = rest.partition("@")
    repository, _, tag = rest.rpartition(":") if ":" in rest.rsplit("/", 1)[-1] else (rest, "", "")
    return repository, tag or ("" if digest else "latest"), digest


def _read(state: Path, digest: str, what: str, uri: str) -> bytes:
    try:
        return blob_path(state, digest).read_bytes()
    except FileNotFoundError:
        raise ImageUnavailable(f"{what} {digest[:19]} of {uri} is not in the emulator's registry (push the image "
                               "to the running emulator: `mlfn push` or `mlfn deploy --local`)") from None
    except ValueError as exc:
        raise ImageUnavailable(f"{uri}: {exc}") from None


def resolve(state: Path, uri: str) -> Image:
    """The image `uri` names, from the emulator's registry storage (see `registry_storage`)."""
    repository, tag, digest = parse_uri(uri)
    if not digest:
        try:
            digest = tag_path(state, repository, tag).read_text().strip()
        except (FileNotFoundError, ValueError):
            raise ImageUnavailable(f"{uri}: no tag {tag!r} of {repository} in the emulator's registry") from None
    manifest_bytes = _read(state, digest, "manifest", uri)
    try:
        manifest = json.loads(manifest_bytes)
        media_type = str(manifest.get("mediaType") or "application/vnd.oci.image.manifest.v1+json")
        config_digest = manifest["config"]["digest"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ImageUnavailable(f"{uri}: {digest[:19]} is not a single-platform image manifest") from None
    return Image(manifest_bytes, media_type, _read(state, config_digest, "config", uri))


def model_folder(state: Path, uri: str) -> Path:
    """The image's model folder (/opt/mlfn/model) unpacked from its layers into `<state>/models/<digest hex>` once
    per digest: what the host runtime serves when the image cannot run isolated (and what `mlfn deploy` probes)."""
    from types import SimpleNamespace

    from ..image_contents import unpack_model

    image = resolve(state, uri)
    try:
        layers = [SimpleNamespace(path=str(blob_path(state, layer.digest))) for layer in image.layers]
    except ValueError as exc:
        raise ImageUnavailable(f"{uri}: {exc}") from None
    missing = [layer.path for layer in layers if not Path(layer.path).is_file()]
    if missing:
        raise ImageUnavailable(f"a layer of {uri} is not in the emulator's registry (push it again): {missing[0]}")
    return unpack_model(SimpleNamespace(digest=image.digest, layers=layers), state / "models")


def unpack(state: Path, uri: str) -> tuple[Image, Path]:
    """Unpack the image's layers (umoci: whiteouts, ownership, links kept inside) into `<state>/images/<hex>/rootfs`
    once per digest; concurrent callers wait for the first."""
    image = resolve(state, uri)
    folder = state / "images" / image.digest.split(":", 1)[1]
    rootfs = folder / "rootfs"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / ".complete").is_file():
            return image, rootfs
        if not shutil.which("umoci"):
            raise ImageUnavailable("umoci is not installed (apt-get install umoci)")
        layout = Layout(Path(tempfile.mkdtemp(prefix=".layout-", dir=folder))).init()
        try:
            for layer in image.layers:
                layout.put_file(blob_path(state, layer.digest), layer.digest)
            layout.tag("image", image)
            shutil.rmtree(rootfs, ignore_errors=True)
            rootless = ["--rootless"] if os.geteuid() != 0 else []  # files owned by this user (root in its namespace)
            proc = subprocess.run(["umoci", "raw", "unpack", *rootless, "--image", f"{layout.root}:image", str(rootfs)],
                                  capture_output=True, text=True, check=False, timeout=600)
            if proc.returncode != 0:
                tail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
                raise ImageUnavailable(f"umoci could not unpack {uri}: {tail}")
        except FileNotFoundError as exc:
            raise ImageUnavailable(f"a layer of {uri} is not in the emulator's registry: {exc.filename}") from None
        finally:
            shutil.rmtree(layout.root, ignore_errors=True)
        (folder / "image.json").write_text(json.dumps({"image": uri, "digest": image.digest}))
        (folder / ".complete").write_text(image.digest + "\n")
    return image, rootfs


def why_not_isolated() -> str:
    """Why this process cannot start isolated sandboxes (empty: it may try)."""
    if os.environ.get("MLFN_LOCAL_ISOLATION", "").lower() == "host":
        return "MLFN_LOCAL_ISOLATION=host"
    if not hasattr(os, "geteuid"):
        return "no Linux namespaces on this system"
    return ""


def _launcher_python() -> list[str]:
    """An interpreter for the launcher (standard library only): this one, or any python3 this user may run."""
    python = sys.executable if os.access(sys.executable, os.X_OK) else shutil.which("python3") or sys.executable
    return [python, "-I", "-S"]


@lru_cache(maxsize=64)
def _can_enter(rootfs: str, scratch: str = "") -> str:
    """Empty when the launcher can set up `rootfs` here (mount namespace, binds or overlay, proc, tmpfs), else
    its error."""
    try:
        proc = subprocess.run([*_launcher_python(), str(LAUNCHER), "--check", rootfs, *([scratch] if scratch else [])],
                              capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the launcher could not run: {exc}"
    return "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["exit status"])[-1]


def _env(config: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, sep, value = str(item).partition("=")
        if sep:
            env[key] = value
    return env


def prepare(state: str | Path, uri: str) -> ImageRun:
    """How sandboxes of image `uri` start: isolated in its unpacked root filesystem, or the host runtime and why."""
    if not uri:
        return ImageRun("", reason="no image given (a model folder was registered)")
    reason = why_not_isolated()
    if reason:
        return ImageRun(uri, reason=reason)
    try:
        image, rootfs = unpack(Path(state).resolve(), uri)
    except ImageUnavailable as exc:
        return ImageRun(uri, reason=str(exc))
    config = image.config.get("config") or {}
    entrypoint = tuple(config.get("Entrypoint") or ())
    cmd = tuple(config.get("Cmd") or ())
    program = (entrypoint or cmd or ("",))[0]
    if not program.startswith("/") or not os.path.lexists(str(rootfs) + program):
        return ImageRun(uri, reason=f"the image has no runtime base: its entrypoint {program or '(none)'} is not "
                                    "in its root filesystem (model layers only)")
    error = _can_enter(str(rootfs))
    if error:
        who = "" if os.geteuid() == 0 else "not root, and a user namespace of its own was refused: "
        return ImageRun(uri, reason=f"the image could not be isolated here: {who}{error}")
    scratch = rootfs.parent / "scratch"  # only ever a mount point, inside each process's own namespace
    scratch.mkdir(exist_ok=True)
    writable = not _can_enter(str(rootfs), str(scratch))
    return ImageRun(uri, rootfs=str(rootfs), entrypoint=entrypoint, cmd=cmd, env=_env(config),
                    workdir=str(config.get("WorkingDir") or ""), scratch=str(scratch) if writable else "")
