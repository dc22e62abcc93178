"""The fleet's parts without AWS: which folders a selection names, the throttling backoff (with botocore's own
ClientError), the bound on change sets in flight, progress for a log, and a failed stack's row."""

from __future__ import annotations

import io
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlfn.cli.console import CliError
from mlfn.cli.fleet import deploy as fleet_deploy
from mlfn.cli.fleet.progress import Progress
from mlfn.cli.fleet.scheduler import FleetSteps, Limits, is_throttling, with_backoff
from mlfn.cli.fleet.selection import is_selection, select
from mlfn.cli.fleet.table import Row, render

IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"


def throttled(operation: str = "CreateChangeSet") -> ClientError:
    return ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, operation)


@pytest.fixture()
def functions(tmp_path: Path) -> Path:
    for name in ("b", "a", "c"):
        shutil.copytree(IRIS, tmp_path / "functions" / name)
    (tmp_path / "functions" / "docs").mkdir()
    return tmp_path / "functions"


def test_a_folder_of_folders_a_glob_and_a_model_folder_select_models_once(functions: Path) -> None:
    assert [p.name for p in select([str(functions)])] == ["a", "b", "c"]
    assert [p.name for p in select([str(functions / "[ab]"), str(functions / "a")])] == ["a", "b"]
    assert [p.name for p in select([str(functions / "c")])] == ["c"]
    assert is_selection([str(functions)]) and is_selection([str(functions / "*")])
    assert not is_selection([str(functions / "a")]) and not is_selection(["iris"])


def test_a_selection_without_models_names_the_argument(functions: Path) -> None:
    with pytest.raises(CliError, match="docs: no model folders in it"):
        select([str(functions / "docs")])
    with pytest.raises(CliError, match="matches nothing"):
        select([str(functions / "zz*")])


def test_throttling_is_retried_with_growing_backoff_and_other_errors_are_not() -> None:
    calls, sleeps = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise throttled()
        return "done"

    assert with_backoff(flaky, retries=5, base_s=2.0, note=lambda _: None, sleep=sleeps.append) == "done"
    assert len(sleeps) == 2 and 2.0 <= sleeps[0] <= 3.0 and 4.0 <= sleeps[1] <= 6.0
    refused = ClientError({"Error": {"Code": "ValidationError", "Message": "Template format error"}}, "X")
    assert not is_throttling(refused)
    with pytest.raises(ClientError):
        with_backoff(lambda: (_ for _ in ()).throw(refused), retries=5, base_s=2.0, note=print, sleep=sleeps.append)
    assert len(sleeps) == 2
    with pytest.raises(ClientError):  # gives up after `retries`
        with_backoff(lambda: (_ for _ in ()).throw(throttled()), retries=2, base_s=0.0, note=print,
                     sleep=lambda _: None)


def test_no_more_change_sets_in_flight_than_the_limit() -> None:
    steps = FleetSteps(Limits(workers=2, stacks=2), batch=None)  # type: ignore[arg-type]

    def stack() -> None:
        time.sleep(0.05)

    threads = [threading.Thread(target=steps.for_model(i, print), args=("stack", stack)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert steps.peak_in_flight == 2


def test_progress_in_a_log_has_no_cursor_codes_and_a_tally_per_model() -> None:
    out = io.StringIO()
    progress = Progress(2, out, tty=False)
    progress.say("a", "- building")
    progress.finished("a", "deployed", 1.0)
    progress.close()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert text.splitlines() == ["[a] - building", "[a] deployed in 1.0s", "[fleet] 1/2 done: 1 deployed"]
    tty = io.StringIO()
    Progress(2, tty, tty=True).say("a", "x")
    assert tty.getvalue().startswith("\r\x1b[K[a] x\n[fleet] 0/2 done")


def test_a_failed_update_is_a_rolled_back_row_naming_the_resource_and_the_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mlfn.cli import deploy_flow
    from mlfn.cli.aws.cloudformation import DeployError
    from mlfn.cli.fleet.synth_batch import BatchSynth

    def fails(request: Any, **_: Any) -> None:
        raise DeployError("x", stack_name="mlfn-iris-dev", status="UPDATE_ROLLBACK_COMPLETE",
                          resource="ModelFunction", resource_type="AWS::Lambda::Function",
                          reason="Code storage limit exceeded.")

    monkeypatch.setattr(deploy_flow, "deploy", fails)
    batch = BatchSynth(1, print)
    request = deploy_flow.DeployRequest(IRIS, local=True)
    row = fleet_deploy.deploy_one(0, request, FleetSteps(Limits(), batch), batch, Progress(1, io.StringIO()))
    assert (row.model, row.result, row.stack) == ("iris", "rolled back", "mlfn-iris-dev")
    assert row.resource == "ModelFunction (AWS::Lambda::Function)" and row.reason == "Code storage limit exceeded."
    assert "-> ModelFunction (AWS::Lambda::Function): Code storage limit exceeded." in render([row])
    assert row.failed and Row("m", "dev", "lambda", "unchanged").failed is False


def test_sessions_share_one_botocore_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet opens a session per model; service models must be parsed once per process, not per session."""
    from mlfn.cli.aws.session import local_session

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    one, two = local_session(), local_session()
    assert one is not two
    assert one._session.get_component("data_loader") is two._session.get_component("data_loader")


@pytest.mark.slow  # one synth (jsii + node): ~15 s
def test_synth_of_a_folder_writes_every_stack_in_one_app_run(functions: Path, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    for name in ("a", "b", "c"):  # distinct model names: distinct stacks
        toml = functions / name / "mlfn.toml"
        toml.write_text(toml.read_text().replace('name = "iris"', f'name = "syn-{name}"'))
    out = tmp_path / "assembly"
    done = subprocess.run([sys.executable, "-m", "mlfn.cli.main", "synth", str(functions / "[ab]"), "--out", str(out),
                           "--json"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert [s["stack"] for s in doc["stacks"]] == ["mlfn-syn-a-dev", "mlfn-syn-b-dev"]
    for stack in doc["stacks"]:
        template = json.loads(Path(stack["template"]).read_text())
        assert stack["resources"] == len(template["Resources"]) > 5
        assert any(r["Type"] == "AWS::Lambda::Function" for r in template["Resources"].values())
    manifest = json.loads((out / "manifest.json").read_text())  # one cloud assembly holds both
    assert {"mlfn-syn-a-dev", "mlfn-syn-b-dev"} <= set(manifest["artifacts"])
