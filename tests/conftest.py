"""Fixtures shared by every test folder. Each folder (tests/runtime, tests/infra, ...) keeps its own conftest."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def functions_dir() -> Path:
    return FUNCTIONS
