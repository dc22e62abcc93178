"""mlfn's ECS stack with `[rollout] strategy = "canary"` in the emulator's CloudFormation: the alternate target group,
the production listener rule, the infrastructure role and the metric-math target tracking are created, and the stack
deletes cleanly (the emulator's ECS services update at once: no traffic shift runs here)."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOML = """name = "canary-ecs"
target = "ecs"
gpu = true
[rollout]
strategy = "canary"
percent = 20
interval_minutes = 3
"""
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfn/canary@sha256:" + "ef" * 32


def _wait(cfn: Any, name: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        try:
            stack: dict[str, Any] = cfn.describe_stacks(StackName=name)["Stacks"][0]
        except cfn.exceptions.ClientError:  # gone: deleted
            return {"StackStatus": "DELETE_COMPLETE"}
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            assert stack["StackStatus"] == status, (stack["StackStatus"], stack.get("StackStatusReason"))
            return stack
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_the_ecs_canary_stack_creates_and_deletes(tmp_path_factory: pytest.TempPathFactory) -> None:
    from mlfn.infra.synth import synth_model

    model = tmp_path_factory.mktemp("canary-ecs")
    shutil.copyfile(ROOT / "functions" / "iris" / "model.onnx", model / "model.onnx")
    (model / "mlfn.toml").write_text(TOML, encoding="utf-8")
    template = synth_model(model, image_uri=IMAGE, outdir=tmp_path_factory.mktemp("cdk.out")).read_text()
    cfn, name = boto3.client("cloudformation"), f"canary-ecs-{uuid.uuid4().hex[:6]}"
    cfn.create_stack(StackName=name, TemplateBody=template, Capabilities=["CAPABILITY_IAM"])
    _wait(cfn, name, "CREATE_COMPLETE")
    resources = {r["ResourceType"]: r.get("PhysicalResourceId", "")
                 for r in cfn.describe_stack_resources(StackName=name)["StackResources"]}
    assert {"AWS::ElasticLoadBalancingV2::ListenerRule", "AWS::ApplicationAutoScaling::ScalingPolicy"} <= set(resources)
    rules = boto3.client("elbv2").describe_rules(ListenerArn=resources["AWS::ElasticLoadBalancingV2::Listener"])
    (rule,) = (r for r in rules["Rules"] if not r["IsDefault"])
    weights = sorted(g["Weight"] for g in rule["Actions"][0]["ForwardConfig"]["TargetGroups"])
    assert weights == [0, 100]  # both target groups, production on the primary
    cfn.delete_stack(StackName=name)
    _wait(cfn, name, "DELETE_COMPLETE")
