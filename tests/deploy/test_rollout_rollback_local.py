"""A bad new version rolled back end to end, the way a user meets it: `mlfn deploy --local` of a model with a canary
`[rollout]`, then a redeploy of a changed model whose hook fails on a third of inputs, while signed HTTPS requests
(botocore SigV4 + httpx) keep hitting the Function URL. The stack update hands the alias to the emulator's
CodeDeploy, the data plane routes by the alias's weights, the sandboxes' EMF `ServerErrors` land in the emulator's
CloudWatch, a rollout alarm fires on them, CodeDeploy flips the alias back and fails the alias update, and the stack
update rolls back (UPDATE_ROLLBACK_COMPLETE). `mlfn deploy` exits non-zero naming the alarm and its datapoints.

Time scale 0.05 (MLFN_ALARM_TIME_SCALE): an AWS minute takes 3 s; the canary holds 30% for 5 minutes (15 s)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is imported from the repository root

from bench.deploy_canary import POOL
from bench.rollout_canary import BAD_HOOK

pytestmark = pytest.mark.slow
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROLLOUT = ('[rollout]\nstrategy = "canary"\npercent = 30\ninterval_minutes = 5\nerror_count = 3\n'
           "error_rate_percent = 5.0\n")
def fails_on_bad(j: int) -> bool:
    return round(POOL[j][0] * 100) % 3 == 1


@pytest.fixture(scope="module")
def emulator(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with h.started_emulator(tmp_path_factory.mktemp("rollback"), alarm_time_scale=0.05) as emulator:
        yield emulator


def _make_bad(model: Path, h: Any) -> None:
    """v2: the model's answers shifted (so a 200 tells which version answered) and a hook failing a third."""
    h.shift_iris(model)
    (model / "hooks.py").write_text(BAD_HOOK)
    toml = (model / "mlfn.toml").read_text()
    (model / "mlfn.toml").write_text(toml.replace('target = "lambda"\n', 'target = "lambda"\nhooks = "hooks.py"\n'))


def test_a_bad_version_is_rolled_back_on_the_alarm_and_the_old_one_keeps_serving(
        emulator: dict[str, Any], h: Any) -> None:
    cli, root, env = emulator["cli"], emulator["root"], emulator["env"]
    model = h.copy_model(IRIS, root / "badcanary", name="badcanary", extra_toml=ROLLOUT)
    first = cli("deploy", str(model), "--local", "--json").json()
    assert first["status"] == "CREATED", first
    outputs = first["outputs"]
    lam = boto3.client("lambda", endpoint_url=emulator["control_plane"], region_name=env["AWS_REGION"],
                       aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    old_version = lam.get_alias(FunctionName=outputs["FunctionName"], Name="live")["FunctionVersion"]
    old = [h.onnxruntime_answer(model, [row]) for row in POOL]
    _make_bad(model, h)
    new = [h.onnxruntime_answer(model, [row]) for row in POOL]
    assert not any(h.same_predictions(o, n) for o, n in zip(old, new, strict=True))

    with h.SignedLoad(first["url"], "badcanary", env, emulator["ca"], lambda i: [POOL[i % len(POOL)]]) as load:
        assert h.wait_until(lambda: len(load.answers) >= 5, timeout_s=60, every_s=0.2)
        before = len(load.answers)
        started = time.time()
        redeploy = cli("deploy", str(model), "--local", "--json", check=False)
        ended = time.time()
        time.sleep(1.0)
    answers = list(load.answers)

    # mlfn deploy: non-zero, naming the alarm that fired and its datapoints, the stack rolled back
    assert redeploy.code != 0, redeploy.stderr[-3000:]
    fired = re.search(r"alarm (\S+) went to ALARM at \S+ UTC, value \S+: Threshold Crossed: the datapoints "
                      r"\[([^\]]+)\] breached",
                      redeploy.stderr)
    assert fired, redeploy.stderr[-3000:]
    assert "Rollout" in fired.group(1) and float(fired.group(2).split(",")[-1]) > 0
    assert "rolled back; the previous version keeps serving" in redeploy.stderr
    doc = redeploy.json()  # --json: the rolled-back deploy's document on stdout
    assert doc["status"] == "ROLLED_BACK" and doc["stack_status"] == "UPDATE_ROLLBACK_COMPLETE", doc
    assert doc["rollout"]["status"] == "Stopped" and fired.group(1) in doc["rollout"]["error"], doc["rollout"]
    assert doc["rollout"]["traffic"] == {"version": old_version, "shifted": {}}

    # the alias is back on the old version, the stack too, and the URL answers from it
    alias = lam.get_alias(FunctionName=outputs["FunctionName"], Name="live")
    assert alias["FunctionVersion"] == old_version and not (alias.get("RoutingConfig") or {}).get(
        "AdditionalVersionWeights")
    cfn = boto3.client("cloudformation", endpoint_url=emulator["control_plane"], region_name=env["AWS_REGION"],
                       aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    assert cfn.describe_stacks(StackName=first["stack"])["Stacks"][0]["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    after = h.SignedLoad(first["url"], "badcanary", env, emulator["ca"], lambda i: [POOL[i % len(POOL)]],
                         max_requests=30)
    after.run()
    assert [a[2] for a in after.answers] == [200] * 30
    assert all(h.same_predictions(p, old[i % len(POOL)]) for _, i, _, p in after.answers)

    # every answer: the old version (200, old predictions) or the bad one (200 new, or 5xx on a failing row)
    by_old = [a for a in answers if a[2] == 200 and h.same_predictions(a[3], old[a[1] % len(POOL)])]
    by_new_ok = [a for a in answers if a[2] == 200 and h.same_predictions(a[3], new[a[1] % len(POOL)])]
    by_new_5xx = [a for a in answers if a[2] >= 500 and fails_on_bad(a[1] % len(POOL))]
    lost = [a for a in answers if a not in by_old and a not in by_new_ok and a not in by_new_5xx]
    assert not lost, lost[:5]  # none of the old version's requests failed
    assert by_new_5xx and len(by_new_5xx) >= 3
    to_bad = by_new_ok + by_new_5xx
    assert min(a[1] for a in to_bad) >= before and max(a[0] for a in to_bad) <= ended
    first_bad = min(a[0] for a in by_new_5xx)
    print(f"\nrolled back: {len(answers)} requests, {len(to_bad)} reached the bad version ({len(by_new_5xx)} 5xx), "
          f"0 lost; first bad answer {first_bad - started:.1f} s after the redeploy began, deploy returned "
          f"{ended - first_bad:.1f} s after it; alarm {fired.group(1)} [{fired.group(2)}]")
    print("\n".join(line for line in redeploy.stderr.splitlines() if "rollout:" in line or "error:" in line))


def test_no_wait_returns_once_the_rollout_update_started_and_cloudformation_finishes_it(
        emulator: dict[str, Any], h: Any) -> None:
    """`mlfn deploy --no-wait`: back as soon as the change set executes (the stack still UPDATE_IN_PROGRESS, the
    canary holding its 15 s), and the update then ends without the command: the alias on the new version."""
    cli, root, env = emulator["cli"], emulator["root"], emulator["env"]
    model = h.copy_model(IRIS, root / "nowait", name="nowait", extra_toml=ROLLOUT)
    first = cli("deploy", str(model), "--local", "--json").json()
    cfn = boto3.client("cloudformation", endpoint_url=emulator["control_plane"], region_name=env["AWS_REGION"],
                       aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    lam = boto3.client("lambda", endpoint_url=emulator["control_plane"], region_name=env["AWS_REGION"],
                       aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    old_version = lam.get_alias(FunctionName=first["outputs"]["FunctionName"], Name="live")["FunctionVersion"]
    h.shift_iris(model)
    started = cli("deploy", str(model), "--local", "--no-wait", "--json")
    status_right_after = cfn.describe_stacks(StackName=first["stack"])["Stacks"][0]["StackStatus"]
    doc = started.json()
    assert doc["status"] == "STARTED", doc
    assert doc["rollout"]["status"] in ("starting", "Created", "InProgress"), doc["rollout"]  # this update's
    assert status_right_after == "UPDATE_IN_PROGRESS", status_right_after
    assert "update started (--no-wait)" in started.stderr and "`mlfn status nowait`" in started.stderr
    shown = cli("status", "nowait", "--local")
    assert shown.code == 0
    assert h.wait_until(lambda: cfn.describe_stacks(StackName=first["stack"])["Stacks"][0]["StackStatus"]
                        == "UPDATE_COMPLETE", timeout_s=120, every_s=1)
    alias = lam.get_alias(FunctionName=first["outputs"]["FunctionName"], Name="live")
    assert alias["FunctionVersion"] != old_version and not (alias.get("RoutingConfig") or {}).get(
        "AdditionalVersionWeights")
