"""The emulator's control plane on 127.0.0.1 (port 0) for the extension tests; boto3 reaches it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


ROLLOUT_SCALE = 0.01  # wall seconds per AWS second in the rollout tests: an AWS minute takes 0.6 s


@pytest.fixture
def rollout_aws(control_plane: ControlPlane) -> Iterator[dict[str, Any]]:
    """boto3 clients to the emulator, its alarm evaluator and CodeDeploy at ROLLOUT_SCALE (restored after)."""
    import boto3

    from mlfn.cli.local import codedeploy

    evaluator = control_plane.alarms
    before, evaluator.time_scale = evaluator.time_scale, ROLLOUT_SCALE
    evaluator.stop()
    evaluator.start()
    codedeploy.install()
    codedeploy.SETTINGS.endpoint_url, codedeploy.SETTINGS.time_scale = control_plane.url, ROLLOUT_SCALE
    yield {s: boto3.client(s) for s in ("lambda", "iam", "cloudwatch", "codedeploy", "cloudformation")}
    codedeploy.SETTINGS.pre_traffic = None
    evaluator.stop()
    evaluator.time_scale = before
    evaluator.start()
