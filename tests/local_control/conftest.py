"""The emulator's control plane on 127.0.0.1 (port 0) for the extension tests; boto3 reaches it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlfn.cli.local.control_plane import ControlPlane, client_environment


@pytest.fixture(scope="session")
def control_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("control-plane")


@pytest.fixture(scope="session")
def control_plane(control_dir: Path) -> Iterator[ControlPlane]:
    with ControlPlane(state_dir=control_dir) as plane:
        yield plane


@pytest.fixture(autouse=True)
def emulator_env(control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every boto3 client in these tests goes to the emulator, never to AWS."""
    for name, value in client_environment(control_plane.url).items():
        monkeypatch.setenv(name, value)
