"""The SageMaker endpoints' and ECS services' fronts publish AWS's metrics into the emulator's CloudWatch
(`mlfn.cli.local.front_metrics` through the data plane's metrics sink), with the dimension values of mlfn's own
stacks, so the stacks' alarms fire on them and their scaling actions run.

mlfn's real SageMaker and ECS templates are created in the control plane (CloudFormation); a data plane in this
process serves them (tests/local_data/handlers/tiny_server.py, a stdlib stand-in for the model server: "boom"
answers 500). The alarm
evaluator runs at time scale 0.02: an AWS minute takes 1.2 s.
"""

from __future__ import annotations

import json
import shutil
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from mlfn.cli.local.control_plane import ControlPlane
from mlfn.cli.local.data_plane import DataPlane
from mlfn.cli.local.front_metrics import FrontCall, front_datums, stack_dimensions
from mlfn.cli.local.metrics_sink import MetricsSink
from mlfn.cli.local.rest_front import front_of_template

ROOT = Path(__file__).resolve().parents[2]
LOCAL = {"aws_access_key_id": "mlfn-local", "aws_secret_access_key": "mlfn-local-secret", "region_name": "us-east-1"}
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfn/fronts@sha256:" + "ab" * 32


def _synth(tmp: pytest.TempPathFactory, toml: str) -> str:
    from mlfn.infra.synth import synth_model

    model = tmp.mktemp("model")
    shutil.copyfile(ROOT / "functions" / "iris" / "model.onnx", model / "model.onnx")
    (model / "mlfn.toml").write_text(toml, encoding="utf-8")
    return synth_model(model, image_uri=IMAGE, outdir=tmp.mktemp("cdk.out")).read_text()


@pytest.fixture(scope="module")
def sagemaker_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """mlfn's SageMaker stack for a model that scales to zero copies (synthesized once: jsii takes seconds)."""
    return _synth(tmp_path_factory, 'name = "front-sm"\ntarget = "sagemaker"\n[sagemaker]\nmin_copies = 0\n')


@pytest.fixture(scope="module")
def ecs_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """mlfn's ECS stack for a model that idles to zero tasks after 2 minutes."""
    return _synth(tmp_path_factory, 'name = "front-ecs"\ntarget = "ecs"\n[ecs]\nmin_tasks = 0\nidle_minutes = 2\n')


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    """A data plane sharing the control plane's state (inference-component copies) with a metrics sink to it."""
    dp = DataPlane(control_plane.state_dir, persist=False)
    dp.metrics = MetricsSink(boto3.client("cloudwatch", endpoint_url=control_plane.url, **LOCAL))
    dp.ecs = boto3.client("ecs", endpoint_url=control_plane.url, **LOCAL)  # ECS fronts follow desired counts
    dp.start()
    yield dp
    dp.stop()


@pytest.fixture(scope="module")
def server() -> list[str]:
    """The data-plane tests' stand-in for the model server ("boom" answers 500)."""
    return [sys.executable, str(ROOT / "tests" / "local_data" / "handlers" / "tiny_server.py")]


@pytest.fixture
def https(plane: DataPlane) -> Iterator[httpx.Client]:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(plane.ca_path)), timeout=30) as client:
        yield client


def _alarm(resources: dict[str, str], part: str) -> str:
    (name,) = (v for k, v in resources.items() if k.startswith(part) or f"{part}" in k)
    return name


def _until(what: str, predicate: Callable[[], Any], timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def _state(cw: Any, alarm: str) -> str:
    return str(cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"])


def _sum(cw: Any, namespace: str, metric: str, dims: dict[str, str], stat: str = "Sum") -> float:
    points = cw.get_metric_statistics(
        Namespace=namespace, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=datetime.fromtimestamp(time.time() - 600, UTC), EndTime=datetime.fromtimestamp(time.time() + 60, UTC),
        Period=60, Statistics=[stat])["Datapoints"]
    return float(sum(p[stat] for p in points))


def test_sagemaker_datums_carry_the_endpoint_and_component_dimensions() -> None:
    call = FrontCall("sagemaker", "ep", 200, 12.0, model_status=500, model_ms=10.0, component="ep-ic",
                     via_front=True, dimensions={"ApiName": "Api", "Stage": "live"}, timestamp=1.0e9)
    got = {(ns, d["MetricName"], tuple((x["Name"], x["Value"]) for x in d["Dimensions"])): (d["Value"], d["Unit"])
           for ns, d in front_datums(call)}
    assert got[("AWS/SageMaker", "Invocation5XXErrors", (("InferenceComponentName", "ep-ic"),))] == (1.0, "None")
    assert got[("AWS/SageMaker", "Invocation4XXErrors", (("EndpointName", "ep"), ("VariantName", "AllTraffic")))
               ] == (0.0, "None")
    assert got[("AWS/SageMaker", "ModelLatency", (("InferenceComponentName", "ep-ic"),))] == (10000.0, "Microseconds")
    assert got[("AWS/SageMaker", "OverheadLatency", (("InferenceComponentName", "ep-ic"),))] == (2000.0,
                                                                                               "Microseconds")
    assert got[("AWS/ApiGateway", "Count", (("ApiName", "Api"), ("Stage", "live")))] == (1.0, "Count")
    assert got[("AWS/ApiGateway", "5XXError", (("ApiName", "Api"),))] == (0.0, "Count")  # the caller got 200
    refused = front_datums(FrontCall("sagemaker", "ep", 400, 1.0, component="ep-ic", no_capacity=True))
    assert [(d["MetricName"], d["Value"]) for _, d in refused] == [("NoCapacityInvocationFailures", 1.0)]
    direct = front_datums(FrontCall("sagemaker", "ep", 200, 1.0, model_status=200, dimensions={"ApiName": "Api"}))
    assert {ns for ns, _ in direct} == {"AWS/SageMaker"}  # InvokeEndpoint itself: no API Gateway metrics


def test_ecs_datums_are_the_http_apis_and_the_load_balancers() -> None:
    ids = {"ApiId": "a1", "Stage": "$default", "LoadBalancer": "app/lb/1", "TargetGroup": "targetgroup/tg/2"}
    answered = front_datums(FrontCall("ecs", "svc", 502, 30.0, model_status=502, model_ms=25.0, dimensions=ids))
    names = {(ns, d["MetricName"], len(d["Dimensions"])) for ns, d in answered}
    assert {("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", 1), ("AWS/ApplicationELB", "RequestCount", 2),
            ("AWS/ApiGateway", "Count", 1), ("AWS/ApiGateway", "5xx", 2)} <= names
    response_time = next(d for _, d in answered if d["MetricName"] == "TargetResponseTime")
    assert (response_time["Value"], response_time["Unit"]) == (0.025, "Seconds")
    no_task = front_datums(FrontCall("ecs", "svc", 503, 5.0, dimensions=ids))
    assert {(ns, d["MetricName"]) for ns, d in no_task if ns == "AWS/ApplicationELB"} == {
        ("AWS/ApplicationELB", "HTTPCode_ELB_503_Count"), ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count")}


def test_sagemaker_requests_drive_the_stacks_scale_from_zero_and_error_alarms(
        control_plane: ControlPlane, plane: DataPlane, server: list[str], https: httpx.Client,
        sagemaker_template: str, fast_alarms: Callable[[int], None], create_stack: Callable[..., Any]) -> None:
    sm, cw = boto3.client("sagemaker"), boto3.client("cloudwatch")
    outputs, resources = create_stack(f"front-sm-{uuid.uuid4().hex[:6]}", sagemaker_template)
    endpoint, component = outputs["EndpointName"], outputs["InferenceComponentName"]
    wake, errors = _alarm(resources, "ScaleOutFromZeroAlarm"), _alarm(resources, "MonitoringErrors")
    sm.update_inference_component_runtime_config(InferenceComponentName=component,
                                                 DesiredRuntimeConfig={"CopyCount": 0})
    ep = plane.register_container(endpoint, ROOT / "functions" / "iris", kind="sagemaker", auth_type="NONE",
                                  front=front_of_template(json.loads(sagemaker_template)), command=server)
    try:
        # Zero copies: the front answers 503 and each request counts in NoCapacityInvocationFailures; the stack's
        # alarm on it goes to ALARM and its step policy sets exactly one copy.
        assert [https.post(f"{ep.url}invocations", content=b"{}").status_code for _ in range(3)] == [503] * 3
        plane.metrics.flush()  # type: ignore[union-attr]
        copies = lambda: sm.describe_inference_component(  # noqa: E731
            InferenceComponentName=component)["RuntimeConfig"]["DesiredCopyCount"]
        _until("the no-capacity alarm did not set one copy", lambda: copies() == 1)
        assert _state(cw, wake) == "ALARM"
        assert _sum(cw, "AWS/SageMaker", "NoCapacityInvocationFailures", {"InferenceComponentName": component}) == 3

        # One copy: requests reach the model. Five 5xx answers in five minutes fire the stack's errors alarm.
        assert https.post(f"{ep.url}invocations", content=b"{}").status_code == 200
        assert [https.post(f"{ep.url}invocations", content=b"boom").status_code for _ in range(5)] == [424] * 5
        plane.metrics.flush()  # type: ignore[union-attr]
        _until("five 5xx answers did not fire the errors alarm", lambda: _state(cw, errors) == "ALARM")
        by_component = {"InferenceComponentName": component}
        assert _sum(cw, "AWS/SageMaker", "Invocations", by_component) == 6
        assert _sum(cw, "AWS/SageMaker", "Invocation5XXErrors", by_component) == 5
        assert _sum(cw, "AWS/SageMaker", "ModelLatency", by_component, "SampleCount") == 6
        api = front_of_template(json.loads(sagemaker_template))
        assert _sum(cw, "AWS/ApiGateway", "Count", {"ApiName": api["ApiName"], "Stage": api["Stage"]}) == 9
    finally:
        plane.unregister(ep.key)


def test_ecs_front_scales_from_zero_on_the_elb_503_alarm_keeps_its_task_while_requests_flow_and_idles_to_zero(
        control_plane: ControlPlane, plane: DataPlane, server: list[str], https: httpx.Client,
        ecs_template: str, fast_alarms: Callable[[int], None], create_stack: Callable[..., Any]) -> None:
    cfn, ecs, cw = boto3.client("cloudformation"), boto3.client("ecs"), boto3.client("cloudwatch")
    stack = f"front-ecs-{uuid.uuid4().hex[:6]}"
    outputs, resources = create_stack(stack, ecs_template)
    cluster, service = outputs["ClusterName"], outputs["ServiceName"]
    idle, errors = _alarm(resources, "ScaleInWhenIdleAlarm"), _alarm(resources, "MonitoringErrors")
    ids = stack_dimensions(cfn, stack, json.loads(ecs_template))
    assert set(ids) == {"ApiId", "Stage", "LoadBalancer", "TargetGroup"}
    ep = plane.register_container(service, ROOT / "functions" / "iris", kind="ecs", auth_type="NONE",
                                  metric_dimensions=ids, cluster=cluster, command=server)
    desired = lambda: ecs.describe_services(cluster=cluster, services=[service])["services"][0]["desiredCount"]  # noqa: E731
    statuses: list[int] = []

    def steady(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            statuses.append(https.post(f"{ep.url}invocations", content=b"{}").status_code)
            plane.metrics.flush()  # type: ignore[union-attr]
            time.sleep(0.1)

    try:
        # Zero tasks (as the idle alarm leaves the service): the load balancer answers 503 itself and nothing
        # starts. HTTPCode_ELB_503_Count fires the stack's scale-out-from-zero alarm, whose step policy sets one
        # task (nothing else sets 1 here); requests then reach the task. Meanwhile the HTTP API's Count by ApiId
        # brings the idle alarm to OK.
        ecs.update_service(cluster=cluster, service=service, desiredCount=0)
        first = https.post(f"{ep.url}invocations", content=b"{}")
        assert first.status_code == 503 and b"503 Service Temporarily Unavailable" in first.content
        (served,) = (t for t in plane.status()["targets"] if t["key"] == ep.key)
        assert served["instance"]["starts"] == 0
        _until("the ELB 503 alarm did not bring a task",
               lambda: steady(0.5) or (statuses[-1] == 200 and desired() == 1 and _state(cw, idle) == "OK"))
        assert set(statuses) == {200, 503}
        lb = {"LoadBalancer": ids["LoadBalancer"]}
        assert _sum(cw, "AWS/ApplicationELB", "HTTPCode_ELB_503_Count", lb) == statuses.count(503) + 1
        # Steady requests for 3 scaled minutes (idle_minutes is 2): the idle alarm stays OK, the task stays.
        statuses.clear()
        steady(3 * 60 * 0.02)
        fast_alarms(1)
        assert _state(cw, idle) == "OK" and desired() == 1 and set(statuses) == {200}
        # Five 5xx answers from the task: HTTPCode_Target_5XX_Count by LoadBalancer fires the errors alarm.
        assert [https.post(f"{ep.url}invocations", content=b"boom").status_code for _ in range(5)] == [500] * 5
        plane.metrics.flush()  # type: ignore[union-attr]
        _until("five target 5xx answers did not fire the errors alarm", lambda: _state(cw, errors) == "ALARM")
        # (moto's GetMetricStatistics also counts datums with more dimensions: the most specific set is exact)
        target_group = {"LoadBalancer": ids["LoadBalancer"], "TargetGroup": ids["TargetGroup"]}
        assert _sum(cw, "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", target_group) == 5
        assert _sum(cw, "AWS/ApplicationELB", "TargetResponseTime", target_group, "SampleCount") >= 6
        # No more requests: after two idle minutes the alarm sets the service to zero tasks.
        _until("the idle alarm did not scale the service to zero", lambda: desired() == 0)
        time.sleep(1.0)  # the front reads the desired count at most once a second
        assert https.post(f"{ep.url}invocations", content=b"{}").status_code == 503
    finally:
        plane.unregister(ep.key)


def test_a_stack_service_without_desired_count_starts_one_task(create_stack: Callable[..., Any]) -> None:
    """CloudFormation creates an `AWS::ECS::Service` without `DesiredCount` with a desired count of 1 (mlfn's ECS
    stacks leave it out), so the emulator's front has a task after a deploy; a given count is kept."""
    def service(count: int | None) -> dict[str, Any]:
        props: dict[str, Any] = {"Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "Task"}}
        return {"Type": "AWS::ECS::Service", "Properties": props if count is None else {**props, "DesiredCount": count}}
    template = {"Resources": {
        "Cluster": {"Type": "AWS::ECS::Cluster"},
        "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {"Family": f"t-{uuid.uuid4().hex[:6]}",
                 "ContainerDefinitions": [{"Name": "m", "Image": "x", "Memory": 128}]}},
        "Default": service(None), "Two": service(2)},
        "Outputs": {"Cluster": {"Value": {"Ref": "Cluster"}}}}
    outputs, resources = create_stack(f"ecs-default-{uuid.uuid4().hex[:6]}", json.dumps(template))
    ecs = boto3.client("ecs")
    found = ecs.describe_services(cluster=outputs["Cluster"], services=[resources["Default"], resources["Two"]])
    assert [s["desiredCount"] for s in found["services"]] == [1, 2]
