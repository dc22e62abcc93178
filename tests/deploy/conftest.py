"""The real `mlfn` command in subprocesses against the local emulator it starts itself (moto control plane and
data plane on 127.0.0.1), with an isolated MLFN_HOME per test session;
the emulator is stopped at the end, even on failure."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest


def _load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlfn_deploy_harness", Path(__file__).with_name("harness.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


harness = _load_harness()


@pytest.fixture(scope="session")
def h() -> ModuleType:
    return harness


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """`cli("deploy", DIR, "--local")` -> Run; the emulator it starts is stopped after the session."""
    root = tmp_path_factory.mktemp("mlfn-deploy")
    runner = harness.Cli(root / "home", root)
    try:
        yield runner
    finally:
        runner.stop_emulator()


@pytest.fixture()
def fresh_cli(tmp_path: Path) -> Iterator[object]:
    """A runner with its own empty MLFN_HOME (for checks that nothing was created)."""
    runner = harness.Cli(tmp_path / "home", tmp_path)
    try:
        yield runner
    finally:
        runner.stop_emulator()
