"""What was deployed survives `mlfn local stop` and `start` (stack, function, version, alias, image, URL, logs);
`mlfn local reset` wipes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # one synthesized stack
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROWS = json.loads((IRIS / "example.json").read_text())["instances"]


def test_deploy_stop_start_call_again_then_reset(fresh_cli: Any, h: Any, tmp_path: Path) -> None:
    cli = fresh_cli
    model = h.copy_model(IRIS, tmp_path / "keep", name="keep")
    deployed = cli("deploy", str(model), "--local", "--json").json()
    data = json.dumps({"instances": ROWS})
    before = json.loads(cli("invoke", "keep", "--local", "--data", data).stdout)["predictions"]

    assert cli("local", "stop", "--json").json() == {"stopped": True}
    cli("local", "start")
    status = cli("status", "keep", "--local", "--json").json()
    assert status["status"] == "CREATE_COMPLETE" and status["version"] == "1"
    assert status["image"].endswith(deployed["digest"])

    def answer() -> Any:
        run = cli("invoke", "keep", "--local", "--data", data, check=False)
        return json.loads(run.stdout)["predictions"] if run.code == 0 else None

    after = h.wait_until(answer, timeout_s=60, every_s=1)  # the data plane picks the function up again
    assert after is not None and h.same_predictions(after, before)
    again = cli("status", "keep", "--local", "--json").json()
    assert again["url"] == deployed["url"]  # the Function URL kept its URL
    assert "REPORT RequestId:" in cli("logs", "keep", "--local", "--since", "1h").stdout  # logs from before too

    cli("local", "reset")
    assert not (cli.home / "local").exists()
    cli("local", "start")
    assert cli("status", "keep", "--local", check=False).code != 0  # nothing deployed any more
