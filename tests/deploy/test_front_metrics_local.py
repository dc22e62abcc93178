"""Scale from zero end to end, driven by the stack's own alarm: a SageMaker model deployed with `mlfn deploy --local`
is set to zero copies; `mlfn invoke --wait` gets the front's 503, and nothing else acts on the endpoint. The
emulator's front publishes each refusal as `NoCapacityInvocationFailures`, the stack's scale-out-from-zero alarm
goes to ALARM, its step policy sets one copy, and the waiting invoke gets the model's answer.

Time scale 0.05 (MLFN_ALARM_TIME_SCALE): an AWS minute takes 3 s."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlfn.cli.local.control_plane import client_environment

pytestmark = pytest.mark.slow  # one stack synthesis (jsii + node)
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROWS = json.loads((IRIS / "example.json").read_text())["instances"]


@pytest.fixture(scope="module")
def emulator(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("front-metrics")
    runner = h.Cli(root / "home", root)
    runner.env["MLFN_ALARM_TIME_SCALE"] = "0.05"
    try:
        runner("local", "start", "--json")
        yield runner
    finally:
        runner.stop_emulator()


def _deployed(cli: Any, h: Any, folder: Path, target: str) -> tuple[Path, dict[str, str], Callable[[str], Any]]:
    """Iris deployed for `target` as the folder's name: (its folder, the stack's outputs, boto3 client factory)."""
    model = h.copy_model(IRIS, folder, name=folder.name, target=target)
    cli("deploy", str(model), "--local", "--json")
    outputs = cli("status", folder.name, "--local", "--json").json()["outputs"]
    control = json.loads((cli.home / "local" / "control-plane.json").read_text())["url"]
    env = client_environment(control)
    aws = {"endpoint_url": control, "region_name": env["AWS_DEFAULT_REGION"],
           "aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}
    return model, outputs, lambda service: boto3.client(service, **aws)


def test_zero_copies_are_woken_by_the_stacks_alarm_on_the_fronts_metrics(emulator: Any, h: Any,
                                                                         tmp_path: Path) -> None:
    cli = emulator
    model, outputs, client = _deployed(cli, h, tmp_path / "iris-alarm", "sagemaker")
    sm, cw, cfn = (client(s) for s in ("sagemaker", "cloudwatch", "cloudformation"))
    component = outputs["InferenceComponentName"]
    assert any("ScaleOutFromZeroAlarm" in r["LogicalResourceId"]  # the alarm whose action sets one copy
               for r in cfn.describe_stack_resources(StackName="mlfn-iris-alarm-dev")["StackResources"])
    try:
        sm.update_inference_component_runtime_config(InferenceComponentName=component,
                                                     DesiredRuntimeConfig={"CopyCount": 0})
        started = time.monotonic()
        run = cli("invoke", "iris-alarm", "--local", "--data", json.dumps({"instances": ROWS}), "--wait", "120",
                  "--json")
        woke_s = time.monotonic() - started
        assert "model is scaling from zero, retrying in" in run.stderr  # it did find zero copies first
        assert run.json()["status"] == 200
        assert h.same_predictions(run.json()["body"]["predictions"], h.onnxruntime_answer(model, ROWS))
        copies = sm.describe_inference_component(InferenceComponentName=component)["RuntimeConfig"]
        assert copies["DesiredCopyCount"] == 1  # set by the alarm's step policy: nothing else changed it
        failures = cw.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="NoCapacityInvocationFailures",
            Dimensions=[{"Name": "InferenceComponentName", "Value": component}], Period=60, Statistics=["Sum"],
            StartTime=datetime.fromtimestamp(time.time() - 900, UTC),
            EndTime=datetime.fromtimestamp(time.time() + 60, UTC))["Datapoints"]
        refused = sum(p["Sum"] for p in failures)
        assert refused >= 1
        print(f"\nscale from zero by the stack's alarm: answered after {woke_s:.1f} s, {refused:g} refused requests")
    finally:
        cli("destroy", "iris-alarm", "--local", "--yes")


def test_an_ecs_service_at_zero_tasks_is_woken_by_the_stacks_elb_503_alarm(emulator: Any, h: Any,
                                                                            tmp_path: Path) -> None:
    """The same for ECS: at zero desired tasks the front answers the load balancer's 503, counted in
    `HTTPCode_ELB_503_Count`; the stack's scale-out-from-zero alarm sets one task and the waiting invoke answers."""
    cli = emulator
    model, outputs, client = _deployed(cli, h, tmp_path / "iris-ecs-alarm", "ecs")
    ecs = client("ecs")
    cluster, service = outputs["ClusterName"], outputs["ServiceName"]

    def desired() -> int:
        return int(ecs.describe_services(cluster=cluster, services=[service])["services"][0]["desiredCount"])

    try:
        # A new service starts one task, but its idle alarm (no request yet; missing data breaches) takes it to
        # zero within a scaled minute or two: make sure it is at zero now.
        ecs.update_service(cluster=cluster, service=service, desiredCount=0)
        started = time.monotonic()
        run = cli("invoke", "iris-ecs-alarm", "--local", "--data", json.dumps({"instances": ROWS}), "--wait",
                  "120", "--json")
        woke_s = time.monotonic() - started
        assert "model is scaling from zero, retrying in" in run.stderr
        assert run.json()["status"] == 200
        assert h.same_predictions(run.json()["body"]["predictions"], h.onnxruntime_answer(model, ROWS))
        assert desired() == 1  # set by the alarm's step policy
        print(f"\nECS scale from zero by the stack's alarm: answered after {woke_s:.1f} s")
    finally:
        cli("destroy", "iris-ecs-alarm", "--local", "--yes")
