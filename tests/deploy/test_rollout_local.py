"""A canary rollout end to end in the emulator: `mlfn deploy --local` of a model with `[rollout] strategy =
"canary"`, then a redeploy of a changed model. The stack update hands the alias to CodeDeploy (the alias's
`CodeDeployLambdaAliasUpdate` UpdatePolicy), the pre-traffic check calls the new version with the example, the
data plane routes each request by the alias's weights, and signed HTTPS requests to the Function URL keep
answering 200 all along, first from the old version only, then from both, then from the new one.

Time scale 0.1 (MLFN_ALARM_TIME_SCALE): an AWS minute takes 6 s, so the canary holds 50% for 6 s."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytestmark = pytest.mark.slow
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROWS = json.loads((IRIS / "example.json").read_text())["instances"]
ROLLOUT = '[rollout]\nstrategy = "canary"\npercent = 50\ninterval_minutes = 1\n'
MAX_REQUESTS = 3000


@pytest.fixture(scope="module")
def emulator(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with h.started_emulator(tmp_path_factory.mktemp("rollout"), alarm_time_scale=0.1) as emulator:
        yield emulator


def test_a_canary_redeploy_rolls_forward_while_the_url_keeps_answering(emulator: dict[str, Any], h: Any) -> None:
    cli, root = emulator["cli"], emulator["root"]
    model = h.copy_model(IRIS, root / "canary", name="canary", extra_toml=ROLLOUT)
    first = cli("deploy", str(model), "--local", "--json").json()
    assert first["status"] == "CREATED", first
    old = h.onnxruntime_answer(model, ROWS)
    h.shift_iris(model)
    new = h.onnxruntime_answer(model, ROWS)
    assert not h.same_predictions(old, new)

    with h.SignedLoad(first["url"], "canary", emulator["env"], emulator["ca"], lambda i: ROWS,
                      max_requests=MAX_REQUESTS) as signed:
        assert h.wait_until(lambda: len(signed.answers) >= 5, timeout_s=60, every_s=0.2)
        before = len(signed.answers)
        started = time.monotonic()
        redeploy = cli("deploy", str(model), "--local", "--json")
        took = time.monotonic() - started
        during = len(signed.answers)
        time.sleep(1.0)
    load = SimpleNamespace(answers=[(status, got) for _, _, status, got in signed.answers])
    result = redeploy.json()
    assert result["status"] == "UPDATED", result
    rollout = result["rollout"]
    assert rollout["status"] == "Succeeded", rollout
    assert rollout["traffic"]["version"] == rollout["to_version"] and not rollout["traffic"]["shifted"]
    assert f"rollout: traffic: 50% on version {rollout['to_version']}" in redeploy.stderr
    assert "BeforeAllowTraffic: version" in redeploy.stderr  # the pre-traffic check ran and passed
    failures = [a for a in load.answers if a[0] != 200]
    assert not failures, failures[:5]
    olds = [i for i, (_, p) in enumerate(load.answers) if h.same_predictions(p, old)]
    news = [i for i, (_, p) in enumerate(load.answers) if h.same_predictions(p, new)]
    assert len(olds) + len(news) == len(load.answers)
    assert olds and news and min(news) >= before and max(olds) < during  # old, both, then new only
    assert any(o > n for o in olds for n in news[:1]), "no request answered by the old version after the canary"
    assert news[-1] == len(load.answers) - 1
    print(f"redeploy {took:.1f} s, {len(load.answers)} requests, {len(olds)} old / {len(news)} new, 0 failures")
