"""`mlfn status` and `mlfn rollback` on a Lambda rollout, against the emulator's control plane over boto3 (the AWS
code path with AWS_ENDPOINT_URL on 127.0.0.1): the stack's outputs name the CodeDeploy application and group, the
deployment runs in the emulator's CodeDeploy (`mlfn.cli.local.codedeploy`) at time scale 0.01.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlfn.cli.local import codedeploy
from mlfn.cli.local.metrics_sink import MetricsSink
from mlfn.cli.main import main
from mlfn.cli.rollout import follow

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.rollout_canary import (  # noqa: E402 - the repository root must be importable first
    Function,
    Load,
    create_function,
    errors_alarm,
    handler_for,
    model_versions,
    start_deployment,
    wait_done,
)


@pytest.fixture
def emulated(rollout_aws: dict[str, Any]) -> dict[str, Any]:
    return rollout_aws


def _model_stack(cfn: Any, fn: Function, name: str) -> None:
    """A stack with the outputs a Lambda model's stack with [rollout] has (its resources are not needed here)."""
    template = {"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}, "Outputs": {
        "Target": {"Value": "lambda"}, "FunctionName": {"Value": fn.name}, "AliasName": {"Value": "live"},
        "RolloutApplication": {"Value": f"mlfn-{fn.name}"}, "RolloutDeploymentGroup": {"Value": "live"}}}
    cfn.create_stack(StackName=f"mlfn-{name}-dev", TemplateBody=json.dumps(template))
    deadline = time.monotonic() + 10
    while cfn.describe_stacks(StackName=f"mlfn-{name}-dev")["Stacks"][0]["StackStatus"] != "CREATE_COMPLETE":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def outputs_of(fn: Function) -> dict[str, str]:
    return {"Target": "lambda", "FunctionName": fn.name, "AliasName": "live",
            "RolloutApplication": f"mlfn-{fn.name}", "RolloutDeploymentGroup": "live"}


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main([*argv, "--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if out.out.strip() else {}), out.err


def test_status_shows_a_running_rollout_and_rollback_stops_it(emulated: dict[str, Any], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    fn = create_function(emulated["lambda"], emulated["iam"], name)
    _model_stack(emulated["cloudformation"], fn, name)
    errors_alarm(emulated["cloudwatch"], f"{name}-5xx", 2)
    routing = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 60}}
    deployment = start_deployment(emulated["codedeploy"], fn, routing, [f"{name}-5xx"])
    deadline = time.monotonic() + 5
    while not codedeploy.RUNS[deployment].weights:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    code, doc, _ = _cli(capsys, "status", name)
    assert code == 0
    rollout = doc["rollout"]
    assert (rollout["deployment"], rollout["status"]) == (deployment, "InProgress")
    assert rollout["traffic"] == {"version": fn.v1, "shifted": {fn.v2: 10.0}}
    assert rollout["alarms"][0]["name"] == f"{name}-5xx"
    main(["status", name])
    assert f"InProgress {fn.v1}->{fn.v2}; alias on version {fn.v1} (10% on version {fn.v2})" in capsys.readouterr().out

    code, doc, err = _cli(capsys, "rollback", name)
    assert code == 0, err
    assert f"stopping deployment {deployment} ({fn.v1}->{fn.v2}) with rollback" in err
    assert f"rolled back: alias on version {fn.v1}" in err
    assert doc["status"] == "Stopped" and doc["traffic"] == {"version": fn.v1, "shifted": {}}
    assert doc["error"].startswith("MANUAL_STOP")


def test_rollback_names_the_alarm_that_fired_and_its_value(emulated: dict[str, Any], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    fn = create_function(emulated["lambda"], emulated["iam"], name)
    _model_stack(emulated["cloudformation"], fn, name)
    alarm = f"{name}-5xx"
    errors_alarm(emulated["cloudwatch"], alarm, 2)
    sink = MetricsSink(emulated["cloudwatch"]).start()
    v1_dir, v2_dir = model_versions(tmp_path, bad=True)
    load = Load(emulated["lambda"], fn, {fn.v1: handler_for(v1_dir, sink), fn.v2: handler_for(v2_dir, sink)}, sink)
    worker = threading.Thread(target=load.run, args=(3000, 20), daemon=True)
    worker.start()
    try:
        routing = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 30, "canaryInterval": 10}}
        started = time.time() - 1
        deployment = start_deployment(emulated["codedeploy"], fn, routing, [alarm])
        lines: list[str] = []  # what `mlfn deploy` prints while it follows the rollout
        followed = follow(boto3.Session(), outputs_of(fn), lines.append, since=started, timeout_s=15, poll_s=0.05)
        info = wait_done(emulated["codedeploy"], deployment, 15)
    finally:
        load.stop.set()
        worker.join(timeout=10)
        sink.stop()
    assert info["status"] == "Stopped" and followed is not None and followed["fired"]["name"] == alarm
    assert lines[-2].startswith(f"rollout: Stopped {fn.v1}->{fn.v2}; alias on version {fn.v1}")
    assert re.search(rf"^rollout: rolled back \(Stopped\); alarm {alarm} went to ALARM at \S+ UTC, "
                     r"value [0-9.]+: Threshold Crossed: the datapoints \[", lines[-1]), lines[-1]
    assert followed["fired"]["value"] >= 2  # the errors alarm's threshold: the value that stopped the rollout
    # The rollout already rolled back; `mlfn rollback` says why and keeps the alias on the previous version.
    code, doc, err = _cli(capsys, "rollback", name)
    assert code == 0, err
    assert f"alarm {alarm} went to ALARM at " in err and "Threshold Crossed: the datapoints [" in err
    assert f"last deployment {deployment} Stopped: alarm {alarm} is in ALARM" in err
    assert doc["traffic"] == {"version": fn.v1, "shifted": {}}


def test_rollback_of_a_model_without_rollout_is_refused(emulated: dict[str, Any],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    template = {"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                "Outputs": {"Target": {"Value": "lambda"}, "FunctionName": {"Value": name}}}
    emulated["cloudformation"].create_stack(StackName=f"mlfn-{name}-dev", TemplateBody=json.dumps(template))
    time.sleep(0.5)
    code, _, err = _cli(capsys, "rollback", name)
    assert code == 2
    assert "has no [rollout]" in err and "Traceback" not in err


def test_deploy_follows_the_shift_step_by_step(emulated: dict[str, Any]) -> None:
    """What `mlfn deploy` prints while the rollout it started runs: each traffic step, alarm states, the end."""
    name = f"cli-{uuid.uuid4().hex[:6]}"
    fn = create_function(emulated["lambda"], emulated["iam"], name)
    errors_alarm(emulated["cloudwatch"], f"{name}-5xx", 2)
    outputs = {"Target": "lambda", "FunctionName": fn.name, "AliasName": "live",
               "RolloutApplication": f"mlfn-{fn.name}", "RolloutDeploymentGroup": "live"}
    routing = {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 50, "linearInterval": 1}}
    started = time.time() - 1
    start_deployment(emulated["codedeploy"], fn, routing, [f"{name}-5xx"])
    lines: list[str] = []
    doc = follow(boto3.Session(), outputs, lines.append, since=started, timeout_s=15, poll_s=0.05)
    assert doc is not None and doc["status"] == "Succeeded"
    text = "\n".join(lines)
    assert "rollout: emulator time scale 0.01: one AWS minute takes 0.6 s" in text
    assert f"rollout: traffic: 50% on version {fn.v2}" in text
    assert f"rollout: traffic: 100% on version {fn.v2}" in text
    assert f"alarms: {name}-5xx" in text
    assert lines[-2].startswith(f"rollout: Succeeded {fn.v1}->{fn.v2}; alias on version {fn.v2} (no split)")
    assert lines[-1] == "rollout: rolled forward (Succeeded)"
    # An update that started no deployment (the alias moved at once) is not waited for.
    lines.clear()
    doc = follow(boto3.Session(), outputs, lines.append, since=time.time() + 60, timeout_s=15, poll_s=0.05)
    assert doc is not None and lines == [f"rollout: none started by this update; {lines[0].split('; ', 1)[1]}"]
