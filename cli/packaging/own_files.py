"""mlfn's own files, found in the installed package (package data through importlib.resources), so an installed mlfn
works from any folder: the runtime's pins, the base Dockerfiles, shipped base descriptors, and the mlfn wheel a
runtime base installs. Nothing here writes into the package; what mlfn makes goes under MLFN_HOME.

    dockerfile = package_file("mlfn.runtime", "images/Dockerfile.lambda")
    wheel = mlfn_wheel(tmp / "wheels", say)     # from the sources of an editable install, else the installed files
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sys
import tempfile
import zipfile
from importlib import metadata, resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .progress import Say

DISTRIBUTION = "mlfn"
WHEEL_SOURCES = ("pyproject.toml", "README.md", "runtime_layer", "infra", "cli")
# dist-info files that describe one installation, not the distribution: a wheel does not carry them
INSTALL_ONLY = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


class OwnFileError(Exception):
    """A file of mlfn's own that this installation lacks."""


def package_file(package: str, name: str) -> Path:
    """A data file of one of mlfn's packages (e.g. `mlfn.runtime`, `requirements.txt`), as installed."""
    path = Path(str(resources.files(package).joinpath(*name.split("/"))))
    if not path.exists():
        raise OwnFileError(f"{package}/{name} is missing from this installation of mlfn ({path.parent})")
    return path


def descriptors_dir() -> Path:
    """Where base descriptors ship with mlfn (`runtime_layer/images` in the sources)."""
    return Path(str(resources.files("mlfn.runtime").joinpath("images")))


def editable_source() -> Path | None:
    """The source folder of an editable install (`pip install -e`, from its PEP 610 direct_url.json), else None."""
    for dist in _installations():
        try:
            doc = json.loads(dist.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        if (doc.get("dir_info") or {}).get("editable"):
            url = urlsplit(str(doc.get("url", "")))
            folder = Path(unquote(url.path)) if url.scheme == "file" else None
            return folder if folder and (folder / "pyproject.toml").is_file() else None
        return None
    return None


def _installations() -> list[metadata.Distribution]:
    """mlfn's installations on sys.path that pip recorded (a RECORD; not a source tree's own egg-info), first first."""
    return [d for d in metadata.distributions(name=DISTRIBUTION) if d.read_text("RECORD") is not None]


def mlfn_wheel(dest: Path, say: Say) -> Path:
    """The mlfn wheel a runtime base installs: built from the sources of an editable install (they are the code that
    runs), else repacked from the installed distribution's own files."""
    source = editable_source()
    return build_wheel(source, dest, say) if source else repack_installed(dest)


def build_wheel(repo_root: Path, dest: Path, say: Say) -> Path:
    """The mlfn wheel, built from a clean copy of the sources (an in-tree build/ folder can hold stale modules)."""
    from .offline_base import OfflineBuildError, run_step

    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlfn-src-") as tmp:
        src = Path(tmp)
        for name in WHEEL_SOURCES:
            path = repo_root / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "cdk.out"))
            elif path.is_file():
                shutil.copy(path, src / name)
        run_step("mlfn wheel", [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                                "-w", str(dest), str(src)], say)
    wheels = sorted(dest.glob("mlfn-*.whl"))
    if not wheels:
        raise OfflineBuildError(f"pip wheel wrote no mlfn wheel to {dest}")
    return wheels[-1]


def repack_installed(dest: Path) -> Path:
    """A wheel of the installed distribution: its `mlfn/` files and dist-info metadata, with a fresh RECORD."""
    installed = _installations()
    if not installed:
        raise OwnFileError("mlfn is not installed here (no RECORD of an installation to pack into a wheel)")
    dist = installed[0]
    info = f"{dist.metadata['Name']}-{dist.version}.dist-info"
    files = sorted((f for f in dist.files or [] if f.parts and f.parts[0] in ("mlfn", info)
                    and "__pycache__" not in f.parts and f.suffix != ".pyc"
                    and not (f.parts[0] == info and f.name in INSTALL_ONLY)), key=str)
    if not any(f.parts[0] == "mlfn" for f in files):
        raise OwnFileError(f"the installed {info} lists no mlfn/ files to pack into a wheel")
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"mlfn-{dist.version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            data = Path(str(f.locate())).read_bytes()
            zf.writestr(str(f), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{f},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel
