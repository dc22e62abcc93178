"""Many models through the real CLI against the local emulator: `mlfn deploy FOLDER --local` deploys every model
folder in it (small copies of the bundled iris model, one of them broken), ends with a table and a non-zero exit,
the others answer; a second run reports every model unchanged; `mlfn status FOLDER` reports drift after one
folder is edited. The tests run in file order and share one deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # one shared synth of three stacks (jsii + node): ~30 s
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROWS = json.loads((IRIS / "example.json").read_text())["instances"]
GOOD = ("fleet-a", "fleet-b", "fleet-c")


@pytest.fixture(scope="module")
def fleet(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fleet") / "functions"
    for name in GOOD:
        h.copy_model(IRIS, root / name, name=name)
    broken = h.copy_model(IRIS, root / "fleet-broken", name="fleet-broken")
    (broken / "model.onnx").write_bytes(b"not an onnx model")
    (root / "notes").mkdir()  # a folder without a model is not one
    return root


@pytest.fixture(scope="module")
def first(cli: Any, fleet: Path) -> Any:
    return cli("deploy", str(fleet), "--local", "--json", check=False)


def test_a_folder_of_models_deploys_the_good_ones_and_reports_the_broken_one(cli: Any, h: Any, fleet: Path,
                                                                           first: Any) -> None:
    assert first.code == 1, first.stderr[-3000:]  # one model failed
    doc = first.json()
    rows = {row["model"]: row for row in doc["models"]}
    assert sorted(rows) == sorted((*GOOD, "fleet-broken"))
    for name in GOOD:
        assert rows[name]["result"] == "deployed" and rows[name]["url"].startswith("https://127.0.0.1:")
        assert rows[name]["stack"] == f"mlfn-{name}-dev" and rows[name]["target"] == "lambda"
    broken = rows["fleet-broken"]
    assert broken["result"] == "failed" and "model.onnx" in broken["reason"] and broken["url"] == ""
    assert doc["failed"] == 1 and doc["synth_runs"] == 1  # every stack in one CDK app run
    assert "[fleet] 4/4 done" in first.stderr and "\x1b[" not in first.stderr  # no cursor tricks in a log
    for name in GOOD:  # the others answer, each with the model's own predictions
        answer = cli("invoke", name, "--local", "--data", json.dumps({"instances": ROWS})).json()
        assert h.same_predictions(answer["predictions"], h.onnxruntime_answer(IRIS, ROWS))


def test_the_table_names_the_failure(cli: Any, fleet: Path, first: Any) -> None:
    text = cli("deploy", str(fleet / "fleet-*"), "--local", check=False)
    assert text.code == 1
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "STAGE", "TARGET", "RESULT", "TIME", "URL"]
    broken = next(i for i, line in enumerate(lines) if line.startswith("fleet-broken "))
    assert " failed " in lines[broken] and lines[broken + 1].lstrip().startswith("-> model.onnx")


def test_a_second_run_reports_every_model_unchanged(cli: Any, fleet: Path, first: Any) -> None:
    run = cli("deploy", *(str(fleet / name) for name in GOOD), "--local", "--json")
    doc = run.json()
    assert [row["result"] for row in doc["models"]] == ["unchanged"] * len(GOOD)
    assert doc["synth_runs"] == 0 and doc["failed"] == 0
    assert all(f"[{name}] unchanged in" in run.stderr for name in GOOD)
    assert run.stderr.count("(no change set)") == len(GOOD)  # the stacks already hold these templates


def test_status_reports_drift_of_the_edited_folder_only(cli: Any, h: Any, fleet: Path, first: Any) -> None:
    h.shift_iris(fleet / "fleet-b")
    rows = cli("status", str(fleet), "--local", "--stage", "dev", "--json").json()
    by_model = {row["model"]: row for row in rows}
    assert by_model["fleet-a"]["drift"] == [] and by_model["fleet-c"]["drift"] == []
    assert by_model["fleet-b"]["drift"] and by_model["fleet-b"]["drift"][0].startswith("image sha256:")
    assert by_model["fleet-a"]["status"] == "CREATE_COMPLETE" and by_model["fleet-a"]["version"] == "1"
    assert by_model["fleet-a"]["deployed"] and by_model["fleet-broken"]["status"].startswith("invalid folder")
    text = cli("status", str(fleet), "--local", "--stage", "dev").stdout
    assert "image sha256:" in next(line for line in text.splitlines() if line.startswith("fleet-b "))


def test_only_the_edited_model_is_redeployed_and_it_answers_with_its_new_version(cli: Any, h: Any, fleet: Path,
                                                                                first: Any) -> None:
    doc = cli("deploy", *(str(fleet / name) for name in GOOD), "--local", "--json").json()
    assert {row["model"]: row["result"] for row in doc["models"]} == {
        "fleet-a": "unchanged", "fleet-b": "deployed", "fleet-c": "unchanged"}
    assert doc["synth_runs"] == 1
    answer = cli("invoke", "fleet-b", "--local", "--data", json.dumps({"instances": ROWS})).json()
    assert h.same_predictions(answer["predictions"], h.onnxruntime_answer(fleet / "fleet-b", ROWS))
    assert not h.same_predictions(answer["predictions"], h.onnxruntime_answer(IRIS, ROWS))
    rows = cli("status", str(fleet / "fleet-b"), "--local", "--stage", "dev", "--json").json()
    assert rows[0]["drift"] == [] and rows[0]["version"] == "2"


def test_invoke_and_list_take_the_selection_and_destroy_removes_every_stack(cli: Any, fleet: Path,
                                                                             first: Any) -> None:
    called = cli("invoke", str(fleet), "--local", "--json", check=False)
    assert called.code == 1  # the broken model has no endpoint
    rows = {row["model"]: row for row in called.json()["models"]}
    assert all(rows[name]["result"] == "answered" and "output_label" in rows[name]["reason"] for name in GOOD)
    assert rows["fleet-broken"]["result"] == "failed"
    listed = cli("list", str(fleet / "fleet-[ab]"), "--local", "--json").json()
    assert sorted({row["model"] for row in listed}) == ["fleet-a", "fleet-b"]
    refused = cli("destroy", *(str(fleet / name) for name in GOOD), "--local", check=False)
    assert refused.code == 2 and "pass --yes" in refused.stderr  # no terminal to confirm on
    gone = cli("destroy", *(str(fleet / name) for name in GOOD), "--local", "--yes", "--json").json()
    assert [row["result"] for row in gone["models"]] == ["destroyed"] * len(GOOD)
    after = cli("status", str(fleet / "fleet-a"), str(fleet / "fleet-c"), "--local", "--stage", "dev",
                "--json").json()
    assert [row["status"] for row in after] == ["not deployed", "not deployed"]
