"""Deploys that fail or are interrupted, through the real CLI: the stack rolls back with the first failing resource's
own reason, the previous version keeps answering, and an interrupted deploy is continued by the next one.

The control plane runs in this test process (ControlPlane, published as the emulator's control plane) so a test can
make one AWS call fail on demand: publishing a Lambda version is refused with Lambda's CodeStorageExceededException
(a real failure mode no input can trigger in the emulator). Everything else is the real engine and data plane; the
CLI starts the data plane itself.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # two synthesized images and an interrupted deploy: about a minute
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROWS = json.loads((IRIS / "example.json").read_text())["instances"]


class CodeStorageExceeded(Exception):
    message = "Code storage limit exceeded."


@pytest.fixture(scope="module")
def emulator(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    from mlfn.cli.local.control_plane import ControlPlane
    from mlfn.cli.local.emulator_state import CONTROL_PLANE, publish_address, withdraw_address

    root = tmp_path_factory.mktemp("failures")
    runner = h.Cli(root / "home", root)
    state = runner.home / "local"
    state.mkdir(parents=True)
    plane = ControlPlane(state_dir=state)
    plane.start()
    publish_address(state, CONTROL_PLANE, plane.url)
    try:
        yield runner, plane
    finally:
        withdraw_address(state, CONTROL_PLANE)  # `mlfn local stop` must not signal this process
        try:
            runner("local", "stop", check=False, timeout=60)  # the data plane the CLI started
        finally:
            h.kill_leftovers(state)
            plane.stop()


@pytest.fixture(scope="module")
def model(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h.copy_model(IRIS, tmp_path_factory.mktemp("models") / "petal", name="petal")


def answers(cli: Any) -> Any:
    run = cli("invoke", "petal", "--local", "--data", json.dumps({"instances": ROWS}))
    return json.loads(run.stdout)["predictions"]


def test_failed_update_rolls_back_with_the_resource_reason_and_the_old_version_answers(
        emulator: tuple[Any, Any], h: Any, model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.awslambda.models import LambdaBackend

    cli, _ = emulator
    first = cli("deploy", str(model), "--local", "--json").json()
    old = answers(cli)
    h.shift_iris(model)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise CodeStorageExceeded(CodeStorageExceeded.message)

    monkeypatch.setattr(LambdaBackend, "publish_version", refuse)
    failed = cli("deploy", str(model), "--local", check=False)
    monkeypatch.undo()

    assert failed.code != 0
    error = failed.stderr.strip().splitlines()[-1]
    assert "Code storage limit exceeded." in error and "AWS::Lambda::Version" in error
    assert "previous version keeps serving" in error
    assert "UPDATE_ROLLBACK_COMPLETE" in failed.stderr  # the rollback's progress was shown too
    status = cli("status", "petal", "--local", "--json").json()
    assert status["status"] == "UPDATE_ROLLBACK_COMPLETE" and status["version"] == "1"
    assert status["image"].endswith(first["digest"])
    assert h.same_predictions(answers(cli), old)  # the data plane still runs the previous contents

    fixed = cli("deploy", str(model), "--local", "--json").json()
    assert fixed["status"] == "UPDATED"
    assert h.same_predictions(answers(cli), h.onnxruntime_answer(model, ROWS))


def test_interrupted_deploy_is_continued_by_the_next(emulator: tuple[Any, Any], h: Any, model: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from mlfn.cli.local.cfn_engine import SETTINGS

    cli, _ = emulator
    h.shift_iris(model, delta=-0.3)
    monkeypatch.setattr(SETTINGS, "resource_delay_s", 0.5)  # slow enough to interrupt mid-update
    proc = subprocess.Popen([sys.executable, "-m", "mlfn.cli.main", "deploy", str(model), "--local"],
                            cwd=cli.workdir, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal: a suite run in the background inherits SIGINT ignored, and Python
                            # then installs no KeyboardInterrupt handler
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    deadline = time.monotonic() + 180
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "UPDATE_IN_PROGRESS" in line or not line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err, seen + err
    monkeypatch.undo()

    resumed = cli("deploy", str(model), "--local", "--json")
    assert resumed.json()["status"] in ("UPDATED", "NO_CHANGES")
    assert cli("status", "petal", "--local", "--json").json()["status"] == "UPDATE_COMPLETE"
    assert h.same_predictions(answers(cli), h.onnxruntime_answer(model, ROWS))
