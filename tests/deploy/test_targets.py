"""Each target's real stack through `mlfn deploy --local`: it reaches CREATE_COMPLETE, the emulator serves the image's
model behind the stack's front, `mlfn invoke` (SigV4 for execute-api) gets onnxruntime's answers, destroy removes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # one stack synthesis per target (jsii + node)
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROWS = json.loads((IRIS / "example.json").read_text())["instances"]
PER_TARGET = {"sagemaker": ("EndpointName", "InferenceComponentName"), "ecs": ("ClusterName", "ServiceName")}


@pytest.mark.parametrize("target", ["sagemaker", "ecs"])
def test_target_stack_completes_and_answers(cli: Any, h: Any, tmp_path: Path, target: str) -> None:
    name = f"iris-{target}"
    model = h.copy_model(IRIS, tmp_path / name, name=name, target=target)
    deployed = cli("deploy", str(model), "--local", "--json").json()
    assert deployed["status"] == "CREATED" and deployed["target"] == target
    assert deployed["url"].startswith("https://127.0.0.1:")
    status = cli("status", name, "--local", "--json").json()
    assert status["status"] == "CREATE_COMPLETE" and status["target"] == target
    for key in PER_TARGET[target]:
        assert status["outputs"][key]
    assert status["local"]["key"].startswith(f"{target}:")
    run = cli("invoke", name, "--local", "--data", json.dumps({"instances": ROWS}), "--json").json()
    assert run["status"] == 200
    assert h.same_predictions(run["body"]["predictions"], h.onnxruntime_answer(model, ROWS))
    assert cli("deploy", str(model), "--local", "--json").json()["status"] == "NO_CHANGES"
    destroyed = cli("destroy", name, "--local", "--yes", "--json").json()
    assert name not in {r["stack"] for r in cli("list", "--local", "--json").json()}
    # The stack keeps its log groups; destroy deletes the fixed-name ones (SageMaker's), which would block the next
    # create with "already exists": the same model deploys again.
    endpoint = f"mlfn-{name}-dev"
    fixed = {f"/aws/sagemaker/Endpoints/{endpoint}", f"/aws/sagemaker/InferenceComponents/{endpoint}-ic"}
    assert set(destroyed["deletedLogGroups"]) == (fixed if target == "sagemaker" else set())
    if target == "sagemaker":
        assert cli("deploy", str(model), "--local", "--json").json()["status"] == "CREATED"
        cli("destroy", name, "--local", "--yes")


def test_aws_code_path_through_aws_endpoint_url(cli: Any, h: Any, tmp_path: Path) -> None:
    """Without --local: the AWS session (region and credentials from the environment), ECR, CloudFormation, all
    reached through AWS_ENDPOINT_URL, exactly as `mlfn deploy` runs against AWS."""
    control = cli("local", "start", "--json").json()["control_plane"]
    aws = {"AWS_ENDPOINT_URL": control, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
           "AWS_SECRET_ACCESS_KEY": "secret"}
    model = h.copy_model(IRIS, tmp_path / "cloud-iris", name="cloud-iris")
    refused = cli("deploy", str(model), env=aws, check=False)  # a model-only image could not run on AWS
    assert refused.code == 2 and "no runtime base" in refused.stderr and "mlfn runtime build" in refused.stderr
    run = cli("deploy", str(model), "--base", "none", "--json", env=aws)
    result = run.json()
    assert result["status"] == "CREATED" and result["local"] is False and result["ca"] is None
    assert result["image"].startswith("123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfn-cloud-iris@sha256:")
    assert '--aws-sigv4 "aws:amz:us-east-1:lambda" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"' in run.stderr
    assert "--cacert" not in run.stderr
    listed = cli("list", "--json", env=aws).json()
    assert {"stack": "mlfn-cloud-iris-dev", "status": "CREATE_COMPLETE"}.items() <= next(
        r for r in listed if r["stack"] == "mlfn-cloud-iris-dev").items()
    assert cli("deploy", str(model), "--base", "none", "--json", env=aws).json()["status"] == "NO_CHANGES"
    cli("destroy", "cloud-iris", "--yes", env=aws)
