"""Which model folders a command's arguments name: a model folder, a folder of model folders, or a glob.

    select(["functions/"])            # every sub-folder holding model.onnx or mlfn.toml, sorted by name
    select(["functions/ir*", "x/m"])  # globs expand; duplicates are dropped; the order given is kept
    is_selection(["iris"])            # False: a model's name, not a path (status/destroy/invoke take names too)
"""

from __future__ import annotations

import glob
from pathlib import Path

from mlfn.runtime.spec import CONFIG_FILE

from ..console import CliError

GLOB_CHARS = frozenset("*?[")


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "model.onnx").exists() or (path / CONFIG_FILE).exists())


def _expand(arg: str) -> list[Path]:
    if GLOB_CHARS & set(arg):
        matches = sorted(Path(m) for m in glob.glob(arg))
        if not matches:
            raise CliError(f"{arg}: the pattern matches nothing (expected model folders, or folders of them)")
        return [m for m in matches if m.is_dir()]
    return [Path(arg)]


def select(args: list[str]) -> list[Path]:
    """The model folders `args` name, each once; CliError naming the argument that holds none."""
    found: list[Path] = []
    for arg in args:
        for path in _expand(arg):
            if is_model_dir(path):
                found.append(path)
                continue
            if not path.is_dir():
                raise CliError(f"{path}: not a folder (expected a model folder with model.onnx, or a folder of "
                               "them)")
            children = sorted(c for c in path.iterdir() if is_model_dir(c))
            if not children and not GLOB_CHARS & set(arg):
                raise CliError(f"{path}: no model folders in it (expected sub-folders with model.onnx or "
                               f"{CONFIG_FILE})")
            found.extend(children)
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path.resolve(), None)
    if not unique:
        raise CliError(f"{' '.join(args)}: no model folders found")
    return [Path(p) for p in unique]


def is_selection(args: list[str]) -> bool:
    """The arguments name folders or globs (a fleet), not one model folder or a model's name."""
    if len(args) != 1:
        return len(args) > 1
    arg = args[0]
    if GLOB_CHARS & set(arg):
        return True
    path = Path(arg)
    return path.is_dir() and not is_model_dir(path)


def names_path(arg: str) -> bool:
    """The argument is a path (to a model folder or folder of them) or a glob rather than a model's name. A bare word
    that is also a model folder here stays a name: `mlfn invoke iris` run beside the folder `iris` means the model."""
    return bool(GLOB_CHARS & set(arg)) or "/" in arg or (Path(arg).is_dir() and not is_model_dir(Path(arg)))
