"""The emulator's control plane on 127.0.0.1 (port 0) for the extension tests; boto3 reaches it over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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


ALARM_SCALE = 0.02  # the alarm tests' time scale: a 60 s period and the one-minute evaluation take 1.2 s


@pytest.fixture
def fast_alarms(control_plane: ControlPlane) -> Iterator[Callable[[int], None]]:
    """Run the evaluator at ALARM_SCALE; yields `wait(n)`: return after n more evaluations (bounded)."""
    evaluator = control_plane.alarms
    before, evaluator.time_scale = evaluator.time_scale, ALARM_SCALE
    evaluator.stop()
    evaluator.start()

    def wait(rounds: int) -> None:
        goal = evaluator.evaluations + rounds
        deadline = time.monotonic() + rounds * 60 * ALARM_SCALE * 4 + 5
        while evaluator.evaluations < goal:
            assert time.monotonic() < deadline, "the alarm evaluator stopped evaluating"
            time.sleep(0.05)

    yield wait
    evaluator.stop()
    evaluator.time_scale = before
    evaluator.start()


@pytest.fixture
def create_stack() -> Callable[[str, str], tuple[dict[str, str], dict[str, str]]]:
    """`create(name, template)`: create the stack in the emulator (boto3), wait for it; (its outputs, logical id ->
    physical id)."""
    import boto3

    def create(name: str, template: str) -> tuple[dict[str, str], dict[str, str]]:
        cfn = boto3.client("cloudformation")
        cfn.create_stack(StackName=name, TemplateBody=template, Capabilities=["CAPABILITY_IAM"])
        deadline = time.monotonic() + 120
        while (stack := cfn.describe_stacks(StackName=name)["Stacks"][0])["StackStatus"] == "CREATE_IN_PROGRESS":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack["StackStatus"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        return outputs, {r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
                         for r in cfn.describe_stack_resources(StackName=name)["StackResources"]}

    return create
