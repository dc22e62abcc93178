"""The metrics AWS publishes for one request to a SageMaker endpoint or an ECS service's front, as PutMetricData
datums for the emulator's CloudWatch (sent by `metrics_sink.MetricsSink.record_front`).

`ContainerEndpoint` (`containers.py`) reports each request it answered as a `FrontCall`; `front_datums` turns it
into `(namespace, datum)` pairs, with the dimension values of the stack the alarms were made from:

- SageMaker ("Amazon SageMaker AI metrics in Amazon CloudWatch", `AWS/SageMaker`), under `EndpointName`+
  `VariantName` and, for an inference component, `InferenceComponentName`: `Invocations` (1 per request the model
  answered), `Invocation4XXErrors` / `Invocation5XXErrors` (1 when the model answered 4xx / 5xx, else 0),
  `ModelLatency` and `OverheadLatency` (microseconds); a request that found no copy counts only in
  `NoCapacityInvocationFailures` (by `InferenceComponentName`);
- the SageMaker REST front (API Gateway REST, `AWS/ApiGateway`, `ApiName` and `ApiName`+`Stage`) and the ECS HTTP
  API front (`ApiId` and `ApiId`+`Stage`): `Count` 1, `4XXError`/`5XXError` (REST) or `4xx`/`5xx` (HTTP API) 0 or 1
  by the status the caller got, `Latency` and `IntegrationLatency` (milliseconds);
- the ECS service's load balancer (`AWS/ApplicationELB`; reported only with a non-zero value): `RequestCount` and
  `HTTPCode_Target_NXX_Count` under `LoadBalancer` and `LoadBalancer`+`TargetGroup` with `TargetResponseTime`
  (seconds) when a task answered; when none could (no instance started), `HTTPCode_ELB_503_Count` and
  `HTTPCode_ELB_5XX_Count` under `LoadBalancer` only.

A front's metrics need its ids (`FrontCall.dimensions`: `ApiName`/`ApiId`, `Stage`, `LoadBalancer`,
`TargetGroup`); without them that front's metrics are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
APIGATEWAY_NAMESPACE = "AWS/ApiGateway"
ALB_NAMESPACE = "AWS/ApplicationELB"
VARIANT = "AllTraffic"  # the one production variant the emulator serves (mlfn's stacks name it so)


@dataclass(frozen=True)
class FrontCall:
    """One request a SageMaker endpoint or ECS service answered, as its fronts saw it."""

    kind: str  # "sagemaker" | "ecs"
    name: str  # the endpoint or service
    status: int  # what the caller got
    latency_ms: float  # the whole request, at the emulator's front
    model_status: int | None = None  # the container's own answer; None: no container answered
    model_ms: float = 0.0  # the container's part of latency_ms
    component: str = ""  # the inference component the request named
    no_capacity: bool = False  # refused: the inference component has no copies
    via_front: bool = False  # through the stack's API Gateway front (not sagemaker-runtime's own path)
    dimensions: dict[str, str] = field(default_factory=dict)  # the stack's ids: ApiName/ApiId, Stage, ...
    timestamp: float = 0.0  # epoch seconds; 0: now


Pair = tuple[str, dict[str, Any]]


def _datum(name: str, value: float, unit: str, dims: dict[str, str], stamp: datetime) -> dict[str, Any]:
    return {"MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            "Value": float(value), "Unit": unit, "Timestamp": stamp}


def _sets(namespace: str, dim_sets: list[dict[str, str]], values: list[tuple[str, float, str]],
          stamp: datetime) -> list[Pair]:
    return [(namespace, _datum(name, value, unit, dims, stamp)) for dims in dim_sets for name, value, unit in values]


def sagemaker_datums(call: FrontCall, stamp: datetime) -> list[Pair]:
    if call.no_capacity:
        return _sets(SAGEMAKER_NAMESPACE, [{"InferenceComponentName": call.component}] if call.component else [],
                     [("NoCapacityInvocationFailures", 1, "None")], stamp)
    if call.model_status is None:
        return []
    sets = [{"EndpointName": call.name, "VariantName": VARIANT}]
    if call.component:
        sets.append({"InferenceComponentName": call.component})
    status = call.model_status
    return _sets(SAGEMAKER_NAMESPACE, sets, [
        ("Invocations", 1, "None"), ("Invocation4XXErrors", float(400 <= status < 500), "None"),
        ("Invocation5XXErrors", float(status >= 500), "None"),
        ("ModelLatency", call.model_ms * 1000, "Microseconds"),
        ("OverheadLatency", max(0.0, call.latency_ms - call.model_ms) * 1000, "Microseconds")], stamp)


def api_datums(call: FrontCall, stamp: datetime) -> list[Pair]:
    """The API Gateway front's metrics: REST (SageMaker's, by ApiName) or HTTP API (ECS's, by ApiId)."""
    rest = call.kind == "sagemaker"
    key = "ApiName" if rest else "ApiId"
    api = call.dimensions.get(key)
    if not api or (rest and not call.via_front):
        return []
    sets = [{key: api}]
    if call.dimensions.get("Stage"):
        sets.append({key: api, "Stage": call.dimensions["Stage"]})
    client, server = ("4XXError", "5XXError") if rest else ("4xx", "5xx")
    values = [("Count", 1, "Count"), (client, float(400 <= call.status < 500), "Count"),
              (server, float(call.status >= 500), "Count"), ("Latency", call.latency_ms, "Milliseconds")]
    # the integration (InvokeEndpoint, the ALB) runs in the emulator's process: without a container's answer, its
    # latency is the request's
    integration_ms = call.model_ms if call.model_status is not None else call.latency_ms
    values.append(("IntegrationLatency", integration_ms, "Milliseconds"))
    return _sets(APIGATEWAY_NAMESPACE, sets, values, stamp)


def alb_datums(call: FrontCall, stamp: datetime) -> list[Pair]:
    balancer = call.dimensions.get("LoadBalancer")
    if call.kind != "ecs" or not balancer:
        return []
    lb = {"LoadBalancer": balancer}
    if call.model_status is None:  # no task answered: the load balancer's own 503
        return _sets(ALB_NAMESPACE, [lb], [("HTTPCode_ELB_503_Count", 1, "Count"),
                                           ("HTTPCode_ELB_5XX_Count", 1, "Count")], stamp)
    sets = [lb]
    if call.dimensions.get("TargetGroup"):
        sets.append({**lb, "TargetGroup": call.dimensions["TargetGroup"]})
    values = [("RequestCount", 1, "Count"), ("TargetResponseTime", call.model_ms / 1000, "Seconds")]
    if call.model_status >= 200:
        values.append((f"HTTPCode_Target_{call.model_status // 100}XX_Count", 1, "Count"))
    return _sets(ALB_NAMESPACE, sets, values, stamp)


def front_datums(call: FrontCall) -> list[Pair]:
    """Every `(namespace, datum)` AWS would publish for this request."""
    stamp = datetime.fromtimestamp(call.timestamp, UTC) if call.timestamp else datetime.now(UTC)
    out = api_datums(call, stamp)
    if call.kind == "sagemaker":
        out += sagemaker_datums(call, stamp)
    else:
        out += alb_datums(call, stamp)
    return out


def stack_dimensions(cloudformation: Any, stack_name: str, template: dict[str, Any]) -> dict[str, str]:
    """The ECS front's ids in a deployed stack (a boto3 CloudFormation client's view): `ApiId` and `Stage` of its
    HTTP API, `LoadBalancer` and `TargetGroup` (the ARN suffixes CloudWatch names them by, as the template's
    `LoadBalancerFullName` / `TargetGroupFullName` give them)."""
    out: dict[str, str] = {}
    resources = cloudformation.describe_stack_resources(StackName=stack_name).get("StackResources", [])
    for resource in resources:
        kind, physical = resource["ResourceType"], str(resource.get("PhysicalResourceId") or "")
        if kind == "AWS::ApiGatewayV2::Api" and physical:
            out["ApiId"] = physical
        elif kind == "AWS::ElasticLoadBalancingV2::LoadBalancer" and ":loadbalancer/" in physical:
            out["LoadBalancer"] = physical.split(":loadbalancer/", 1)[1]
        elif kind == "AWS::ElasticLoadBalancingV2::TargetGroup" and physical.count(":") >= 5:
            out["TargetGroup"] = physical.split(":", 5)[5]
    for resource in (template.get("Resources") or {}).values():
        stage = (resource.get("Properties") or {}).get("StageName")
        if resource.get("Type") == "AWS::ApiGatewayV2::Stage" and isinstance(stage, str):
            out["Stage"] = stage
    return out
