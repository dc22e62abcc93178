"""Pushing through the ECR API to a real moto server over HTTP; Lambda (MOTO_LAMBDA_STUB_ECR=false) then checks
the image URI against moto's ECR. Moto limits noted in docs/packaging.md: it keeps only the last segment of a
repository name, and its CompleteLayerUpload computes the digest itself rather than checking ours."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from .helpers import mlfn_json

ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def test_push_then_lambda_accepts_the_image(iris_dir: Path, aws: str, mlfn_home: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pushed = mlfn_json(capsys, "push", str(iris_dir), "--to", "ecr:iris-a", "--tag", "v1")
    ecr = boto3.client("ecr")
    assert pushed["manifest_put"] and len(pushed["uploaded"]) == 3  # two model layers + config (no base)
    assert pushed["reference"].endswith(f"/iris-a@{pushed['digest']}")
    img = ecr.batch_get_image(repositoryName="iris-a", imageIds=[{"imageTag": "v1"}])["images"][0]
    assert json.loads(img["imageManifest"])["layers"][-1]["digest"] in pushed["uploaded"]
    assert img["imageId"]["imageDigest"] == pushed["digest"]

    role = boto3.client("iam").create_role(RoleName="fn-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    fn = boto3.client("lambda").create_function(
        FunctionName="iris-a", PackageType="Image", Code={"ImageUri": pushed["reference"]}, Role=role)
    assert fn["CodeSha256"] == pushed["digest"].split(":")[1]

    with pytest.raises(Exception, match=r"ImageNotFound|not found|does not exist"):
        boto3.client("lambda").create_function(
            FunctionName="iris-missing", PackageType="Image", Role=role,
            Code={"ImageUri": pushed["reference"].rsplit("@", 1)[0] + "@sha256:" + "0" * 64})


def test_repush_of_unchanged_dir_uploads_nothing(iris_dir: Path, aws: str, mlfn_home: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    first = mlfn_json(capsys, "push", str(iris_dir), "--to", "ecr:iris-b")
    again = mlfn_json(capsys, "push", str(iris_dir), "--to", "ecr:iris-b")
    assert again["digest"] == first["digest"]
    assert again["uploaded"] == [] and again["bytes_uploaded"] == 0 and not again["manifest_put"]
    assert sorted(again["skipped"]) == sorted(first["uploaded"])

    (iris_dir / "labels.txt").write_text("a\nb\nc\n")
    changed = mlfn_json(capsys, "push", str(iris_dir), "--to", "ecr:iris-b")
    assert changed["digest"] != first["digest"] and changed["manifest_put"]
    assert len(changed["uploaded"]) == 2  # only the new small-files layer and the new config
    tags = boto3.client("ecr").describe_images(repositoryName="iris-b", imageIds=[{"imageTag": "latest"}])
    assert tags["imageDetails"][0]["imageDigest"] == changed["digest"]


def test_push_of_layout_folder_and_default_repository(iris_dir: Path, aws: str, mlfn_home: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    built = mlfn_json(capsys, "build", str(iris_dir))
    pushed = mlfn_json(capsys, "push", built["layout"])
    assert pushed["digest"] == built["digest"]
    assert "/mlfn-iris@" in pushed["reference"]


def test_push_honours_aws_region_alone(iris_dir: Path, aws: str, mlfn_home: Path,
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore reads only AWS_DEFAULT_REGION; mlfn push resolves the region like every other command
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    pushed = mlfn_json(capsys, "push", str(iris_dir), "--to", "ecr:iris-region")
    assert ".dkr.ecr.us-east-1.amazonaws.com/iris-region@" in pushed["reference"]
