"""The distribution installs under one namespace: mlfn.runtime, mlfn.infra, mlfn.cli, and nothing top-level."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"runtime_layer": "mlfn.runtime", "infra": "mlfn.infra", "cli": "mlfn.cli"}


def declared_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def source_packages() -> set[str]:
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *relative)))
    return found


def test_every_source_package_is_declared() -> None:
    assert source_packages() <= declared_packages(), "add these to [tool.setuptools] packages in pyproject.toml"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("mlfn-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_installs_only_the_mlfn_namespace(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"mlfn"}
    assert "mlfn/__init__.py" not in wheel.namelist(), "mlfn is a namespace shared by its three packages"


def test_wheel_carries_code_and_runtime_pins(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for expected in ("mlfn/runtime/spec.py", "mlfn/cli/main.py", "mlfn/infra/__init__.py",
                     "mlfn/runtime/requirements.txt", "mlfn/runtime/py.typed", "mlfn/runtime/images/Dockerfile.lambda",
                     "mlfn/runtime/images/Dockerfile.gpu", "mlfn/cli/requirements.txt", "mlfn/infra/cdk_flags.json"):
        assert expected in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = wheel.read(metadata).decode()
    assert "Requires-Dist: onnxruntime==" in text
    assert "Provides-Extra: runtime" in text
    entry_points = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "mlfn = mlfn.cli.main:main" in entry_points
