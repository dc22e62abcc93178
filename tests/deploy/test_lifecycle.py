"""A model's life through the real CLI against the local emulator: first deploy, no-op redeploy, changed model,
an unhealthy version refused, status/list/logs, destroy. The tests run in file order and share one deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # each deploy of a new image synthesizes its stack (jsii + node): ~10-25 s
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROWS = json.loads((IRIS / "example.json").read_text())["instances"]


@pytest.fixture(scope="module")
def model(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h.copy_model(IRIS, tmp_path_factory.mktemp("models") / "flower", name="flower")


@pytest.fixture(scope="module")
def first(cli: Any, model: Path) -> Any:
    return cli("deploy", str(model), "--local", "--json")


def invoke(cli: Any, *extra: str) -> Any:
    return cli("invoke", "flower", "--local", "--data", json.dumps({"instances": ROWS}), *extra)


def test_first_deploy_prints_the_https_url_and_serves_the_model(cli: Any, h: Any, model: Path, first: Any) -> None:
    result = first.json()
    assert result["status"] == "CREATED" and result["stack"] == "mlfn-flower-dev" and result["target"] == "lambda"
    assert result["url"].startswith("https://127.0.0.1:") and result["auth_type"] == "AWS_IAM"
    assert result["image"].endswith("/mlfn-flower@" + result["digest"])
    assert "CREATE_COMPLETE      ModelFunction" in first.stderr  # one progress line per resource event
    assert "mlfn invoke flower --local --data" in first.stderr and "--cacert" in first.stderr
    # no runtime base here (an isolated MLFN_HOME): the model-only image runs on the host runtime, and says why
    assert "  runs: host runtime (mlfn.runtime installed on this machine, model folder of the image): " in first.stderr
    assert "the image has no runtime base" in first.stderr
    answer = json.loads(invoke(cli).stdout)
    assert h.same_predictions(answer["predictions"], h.onnxruntime_answer(model, ROWS))


def test_redeploy_of_an_unchanged_folder_is_no_changes(cli: Any, first: Any, model: Path) -> None:
    again = cli("deploy", str(model), "--local", "--json")
    result = again.json()
    assert result["status"] == "NO_CHANGES"
    assert result["digest"] == first.json()["digest"] and result["url"] == first.json()["url"]
    assert "no changes" in again.stderr and "synthesizing" not in again.stderr
    assert "_IN_PROGRESS" not in again.stderr


def test_changed_model_gets_a_new_version_and_new_answers(cli: Any, h: Any, model: Path, first: Any) -> None:
    before = json.loads(invoke(cli).stdout)["predictions"]
    h.shift_iris(model)
    changed = cli("deploy", str(model), "--local", "--json").json()
    assert changed["status"] == "UPDATED" and changed["digest"] != first.json()["digest"]
    assert changed["url"] == first.json()["url"]  # same Function URL, the alias moved
    status = cli("status", "flower", "--local", "--json").json()
    assert status["version"] == "2" and status["image"].endswith(changed["digest"])
    after = json.loads(invoke(cli).stdout)["predictions"]
    assert h.same_predictions(after, h.onnxruntime_answer(model, ROWS))
    assert not h.same_predictions(after, before)


def test_unhealthy_version_is_refused_and_the_previous_one_keeps_serving(cli: Any, h: Any, model: Path) -> None:
    serving = cli("status", "flower", "--local", "--json").json()
    (model / "hooks.py").write_text('raise RuntimeError("broken on purpose")\n')
    toml = (model / "mlfn.toml").read_text()
    (model / "mlfn.toml").write_text(toml.replace('target = "lambda"', 'target = "lambda"\nhooks = "hooks.py"'))
    try:
        run = cli("deploy", str(model), "--local", check=False)
    finally:
        (model / "hooks.py").unlink()
        (model / "mlfn.toml").write_text(toml)
    assert run.code != 0
    error = run.stderr.strip().splitlines()[-1]
    assert "unhealthy" in error and "broken on purpose" in error and "nothing was rolled out" in error
    assert "deploying stack" not in run.stderr  # refused before the stack changed
    now = cli("status", "flower", "--local", "--json").json()
    assert (now["version"], now["image"], now["status"]) == (serving["version"], serving["image"], serving["status"])
    answer = json.loads(invoke(cli).stdout)["predictions"]
    assert h.same_predictions(answer, h.onnxruntime_answer(model, ROWS))


def test_status_list_logs_and_local_status(cli: Any, h: Any, first: Any) -> None:
    listed = cli("list", "--local", "--json").json()
    assert [r["stack"] for r in listed] == ["mlfn-flower-dev"] and listed[0]["url"] == first.json()["url"]
    local = cli("local", "status", "--json").json()
    assert local["running"] and local["control_plane"].startswith("http://127.0.0.1:")
    assert [d["stack"] for d in local["deployed"] if d.get("serving")] == ["mlfn-flower-dev"]
    assert [d["runs"][:12] for d in local["deployed"]] == ["host runtime"]
    assert "\n    runs: host runtime (" in cli("local", "status").stdout

    def logged() -> Any:
        events = cli("logs", "flower", "--local", "--since", "10m", "--json").json()["events"]
        return [e for e in events if e["message"].startswith("REPORT RequestId")]

    assert h.wait_until(logged, timeout_s=20)  # sandbox logs reach the emulator's CloudWatch Logs
    text = cli("logs", "flower", "--local").stdout
    assert "START RequestId" in text


def test_invoke_failure_prints_the_body_on_stderr(cli: Any) -> None:
    run = cli("invoke", "flower", "--local", "--data", '{"instances": [[1, 2]]}', check=False)
    assert run.code == 1 and run.stdout == ""
    assert "HTTP 400" in run.stderr and "expected" in run.stderr


def test_destroy_asks_then_removes_everything(cli: Any) -> None:
    refused = cli("destroy", "flower", "--local", check=False)
    assert refused.code != 0 and "pass --yes" in refused.stderr
    assert cli("status", "flower", "--local", "--json").json()["status"].endswith("_COMPLETE")
    done = cli("destroy", "flower", "--local", "--yes", "--json")
    assert done.json() == {"stack": "mlfn-flower-dev", "destroyed": True, "deletedLogGroups": []}
    assert "DELETE_COMPLETE" in done.stderr
    assert cli("list", "--local", "--json").json() == []
    gone = cli("invoke", "flower", "--local", "--data", "{}", check=False)
    assert gone.code != 0 and "no stack mlfn-flower-dev" in gone.stderr
    assert not [t for t in cli("local", "status", "--json").json()["deployed"]]
