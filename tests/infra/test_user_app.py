"""The constructs inside a user's own stack: several models side by side, refusals at construction."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlfn.infra.checks import InfraError
from mlfn.runtime.errors import SpecError

from .conftest import IMAGE_URI, Synthesized


def test_two_models_in_one_user_stack(synthesized: Synthesized) -> None:
    template = synthesized.templates["user"]
    kinds = [r["Type"] for r in template["Resources"].values()]
    assert kinds.count("AWS::Lambda::Function") == 1
    assert kinds.count("AWS::SageMaker::Endpoint") == 1
    assert kinds.count("AWS::CloudWatch::Dashboard") == 2
    endpoint = next(r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Endpoint")
    assert endpoint["Properties"]["EndpointName"] == "UserModels-Small-One"
    assert "Outputs" not in template or "InvokeUrl" not in template["Outputs"]  # outputs are the user's to choose
    fn = next(r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function")
    account_region, _, repo_and_digest = IMAGE_URI.partition(".amazonaws.com")
    assert fn["Properties"]["Code"]["ImageUri"] == {"Fn::Join": ["", [
        account_region + ".", {"Ref": "AWS::URLSuffix"}, repo_and_digest]]}


def test_constructs_refuse_what_their_target_cannot_run(make_model_dir: Callable[[str, str], Path]) -> None:
    import aws_cdk as cdk

    from mlfn.infra import MlfnEcsGpuModel, MlfnLambdaModel

    stack = cdk.Stack(cdk.App(), "Refusals")
    gpu_dir = make_model_dir("user-gpu", 'gpu = true\ntarget = "ecs"\n')
    with pytest.raises(SpecError, match="Lambda has no GPUs"):
        MlfnLambdaModel(stack, "OnLambda", model_dir=gpu_dir)
    with pytest.raises(InfraError, match="exactly one of spec= or model_dir="):
        MlfnEcsGpuModel(stack, "Nothing")
    with pytest.raises(InfraError, match="not an ECR image"):
        MlfnEcsGpuModel(stack, "BadImage", model_dir=gpu_dir, image_uri="nvcr.io/nvidia/tritonserver:24.01")
