"""The alternatives' own virtual environments under `.mlfn/bench/venvs/<name>`, created on first use.

Every requirement is pinned; a venv counts as installed when its marker file holds exactly the pins asked for,
so changing a pin reinstalls it. onnxruntime and numpy are pinned to the project venv's versions so every
server runs the same kernels.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ORT = "onnxruntime==1.32.0"
NUMPY = "numpy==2.4.6"

REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "fastapi": ("fastapi==0.165.0", "uvicorn[standard]==0.54.0", "pydantic==2.14.4", ORT, NUMPY),
    "kserve": ("kserve==0.21.0", ORT, NUMPY),
    "bentoml": ("bentoml==1.4.40", ORT, NUMPY),
}
MARKER = "mlfn-bench-requirements.txt"


def venv_dir(root: Path, name: str) -> Path:
    return root / name


def python_of(root: Path, name: str) -> Path:
    return venv_dir(root, name) / "bin" / "python"


def is_installed(root: Path, name: str) -> bool:
    marker = venv_dir(root, name) / MARKER
    return python_of(root, name).exists() and marker.exists() and marker.read_text() == _pins(name)


def ensure(root: Path, name: str, *, log: Path) -> Path:
    """The venv's python, installing the venv first if needed (pip output goes to `log`)."""
    if is_installed(root, name):
        return python_of(root, name)
    target = venv_dir(root, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(target)], check=True, stdout=out, stderr=out)
        pip = [str(python_of(root, name)), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, *REQUIREMENTS[name]], check=True, stdout=out, stderr=out, timeout=1800)
    (target / MARKER).write_text(_pins(name))
    return python_of(root, name)


def _pins(name: str) -> str:
    return "\n".join(REQUIREMENTS[name]) + "\n"


if __name__ == "__main__":  # python -m bench.compare.venvs NAME...: install ahead of a run
    for wanted in sys.argv[1:]:
        root = Path(".mlfn/bench/venvs")
        print(wanted, ensure(root, wanted, log=root.parent / f"install-{wanted}.log"))
