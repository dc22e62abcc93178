"""SageMaker's CreateModel refuses an image whose manifest is OCI (aws/amazon-sagemaker-feedback#180): the emulator
does too, reading the manifest media type its ECR stored; an image `mlfn push` sent (Docker v2s2) is accepted."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from mlfn.cli.main import main

ROLE = "arn:aws:iam::123456789012:role/mlfn-sagemaker"
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _upload(ecr: object, repo: str, blob: bytes) -> dict[str, object]:
    upload = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]  # type: ignore[attr-defined]
    ecr.upload_layer_part(repositoryName=repo, uploadId=upload, partFirstByte=0,  # type: ignore[attr-defined]
                          partLastByte=len(blob) - 1, layerPartBlob=blob)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    ecr.complete_layer_upload(repositoryName=repo, uploadId=upload, layerDigests=[digest])  # type: ignore[attr-defined]
    return {"digest": digest, "size": len(blob)}


def test_create_model_refuses_an_oci_manifest_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ecr, sm = boto3.client("ecr"), boto3.client("sagemaker")
    repo = ecr.create_repository(repositoryName="oci-made")["repository"]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      **_upload(ecr, "oci-made", config.encode())}})
    ecr.put_image(repositoryName="oci-made", imageManifest=manifest, imageManifestMediaType=OCI_MANIFEST,
                  imageTag="v1")
    image = f"{repo['repositoryUri']}:v1"
    with pytest.raises(ClientError) as refused:
        sm.create_model(ModelName="oci-model", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": image})
    error = refused.value.response["Error"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "ValidationException"
    assert error["Message"] == (f"Unsupported manifest media type {OCI_MANIFEST} for image {image}. "
                                "Ensure that valid manifest media type is used for specified image.")
    with pytest.raises(ClientError, match="Could not find model"):
        sm.describe_model(ModelName="oci-model")

    model_dir = tmp_path / "iris"
    shutil.copytree(IRIS, model_dir)
    monkeypatch.setenv("MLFN_HOME", str(tmp_path / "home"))
    assert main(["push", str(model_dir), "--to", "ecr:docker-made", "--tag", "v1"]) == 0
    uri = ecr.describe_repositories(repositoryNames=["docker-made"])["repositories"][0]["repositoryUri"]
    arn = sm.create_model(ModelName="docker-model", ExecutionRoleArn=ROLE,
                          PrimaryContainer={"Image": f"{uri}:v1"})["ModelArn"]
    assert arn.endswith(":model/docker-model")


def test_a_stack_model_on_an_oci_image_fails_with_the_reason() -> None:
    """`AWS::SageMaker::Model` goes through the same CreateModel: the stack (a change set, as `mlfn deploy` makes
    it) fails, rolls back, and its event names the media type."""
    ecr, cfn = boto3.client("ecr"), boto3.client("cloudformation")
    repo = ecr.create_repository(repositoryName="oci-stack")["repository"]
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      **_upload(ecr, "oci-stack", config)}})
    ecr.put_image(repositoryName="oci-stack", imageManifest=manifest, imageManifestMediaType=OCI_MANIFEST,
                  imageTag="v1")
    template = {"Resources": {"Model": {"Type": "AWS::SageMaker::Model", "Properties": {
        "ModelName": "oci-stack-model", "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": f"{repo['repositoryUri']}:v1"}}}}}
    cfn.create_change_set(StackName="oci-stack", ChangeSetName="create", ChangeSetType="CREATE",
                          TemplateBody=json.dumps(template))
    cfn.get_waiter("change_set_create_complete").wait(StackName="oci-stack", ChangeSetName="create",
                                                       WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    cfn.execute_change_set(StackName="oci-stack", ChangeSetName="create")
    status = "CREATE_IN_PROGRESS"
    for _ in range(100):
        status = cfn.describe_stacks(StackName="oci-stack")["Stacks"][0]["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    assert status == "ROLLBACK_COMPLETE"
    events = cfn.describe_stack_events(StackName="oci-stack")["StackEvents"]
    reasons = [e.get("ResourceStatusReason", "") for e in events]
    assert any(f"Unsupported manifest media type {OCI_MANIFEST}" in r for r in reasons), reasons
