"""The bundled functions' build script and digits hooks, imported from their files (functions/ is no package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build_models() -> ModuleType:
    return load_module("mlfn_test_build_models", FUNCTIONS / "build_models.py")


@pytest.fixture(scope="session")
def hooks() -> ModuleType:
    return load_module("mlfn_test_digits_hooks", FUNCTIONS / "digits" / "hooks.py")


@pytest.fixture(scope="session")
def function_dirs() -> list[Path]:
    return sorted(p for p in FUNCTIONS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
