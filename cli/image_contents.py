"""The model folder exactly as a built image holds it, unpacked from the image's own layers (not the user's live
folder), once per image digest: what the local emulator runs.

    folder = unpack_model(built, state_dir / "models")    # <root>/<digest hex>/ holding model.onnx, mlfn.toml, ...
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from .packaging.layer import MODEL_PREFIX


def unpack_model(built: Any, root: Path) -> Path:
    """Extract the files under /opt/mlfn/model from the image's model layers into `<root>/<digest hex>`.

    Idempotent (an unpacked digest is reused) and atomic (a temporary folder renamed into place), so an interrupted
    deploy never leaves a half-written folder that a later one would run.
    """
    dest = root / built.digest.split(":", 1)[-1]
    if (dest / ".complete").is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        for layer in built.layers:
            _extract(Path(layer.path), tmp)
        (tmp / ".complete").write_text(built.digest + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _extract(layer: Path, dest: Path) -> None:
    prefix = PurePosixPath(MODEL_PREFIX)
    with tarfile.open(layer, "r:gz") as tar:
        members = []
        for member in tar.getmembers():
            path = PurePosixPath(member.name.lstrip("/"))
            if path == prefix or prefix not in path.parents:
                continue
            member.name = str(path.relative_to(prefix))
            members.append(member)
        tar.extractall(dest, members=members, filter="data")
