"""Pushing through the ECR API to a real moto server over HTTP; Lambda (MOTO_LAMBDA_STUB_ECR=false) then checks
the image URI against moto's ECR. Moto limits noted in docs/packaging.md: it keeps only the last segment of a
repository name, and its CompleteLayerUpload computes the digest itself rather than checking ours."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


LAMBDA_PULLS = {
    "Sid": "LambdaECRImageRetrievalPolicy", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
    "Condition": {"StringLike": {"aws:sourceArn": "arn:aws:lambda:us-east-1:123456789012:function:*"}},
}


def repository_statements(name: str) -> list[dict[str, Any]]:
    policy = boto3.client("ecr").get_repository_policy(repositoryName=name)["policyText"]
    return list(json.loads(policy)["Statement"])


def test_push_lets_lambda_pull_without_the_deployer_needing_set_repository_policy(
        iris_dir: Path, aws: str, mlfn_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Lambda adds this statement itself only for a deployer allowed ecr:Get/SetRepositoryPolicy; mlfn sets it
    mlfn_json(capsys, "push", str(iris_dir), "--to", "ecr:iris-pull")
    assert repository_statements("iris-pull") == [LAMBDA_PULLS]
    mlfn_json(capsys, "push", str(iris_dir), "--to", "ecr:iris-pull")
    assert repository_statements("iris-pull") == [LAMBDA_PULLS]  # present: not added twice


def test_push_keeps_the_repositorys_other_statements(iris_dir: Path, aws: str, mlfn_home: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ecr = boto3.client("ecr")
    ecr.create_repository(repositoryName="iris-shared")
    other = {"Sid": "CrossAccountPull", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
             "Action": ["ecr:BatchGetImage"]}
    ecr.set_repository_policy(repositoryName="iris-shared",
                              policyText=json.dumps({"Version": "2012-10-17", "Statement": [other]}))
    mlfn_json(capsys, "push", str(iris_dir), "--to", "ecr:iris-shared")
    assert repository_statements("iris-shared") == [other, LAMBDA_PULLS]


def test_a_least_privilege_deployer_pushes_with_one_note_when_it_may_not_read_the_policy(
        iris_dir: Path, aws: str, mlfn_home: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    mlfn_json(capsys, "push", str(iris_dir), "--to", "ecr:iris-least")  # an admin's first push sets the policy
    iam = boto3.client("iam")
    iam.create_user(UserName="deployer")
    push_only = ["ecr:DescribeRepositories", "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload",
                 "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage",
                 "ecr:DescribeImages"]
    iam.put_user_policy(UserName="deployer", PolicyName="push", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": push_only, "Resource": "*"}]}))
    key = iam.create_access_key(UserName="deployer")["AccessKey"]

    def reset_auth(count: str) -> None:  # moto enforces IAM on every request after this many (inf: never)
        request = urllib.request.Request(f"{aws}/moto-api/reset-auth", data=count.encode(), method="POST",
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).read()

    (iris_dir / "labels.txt").write_text("a\nb\nc\n")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    reset_auth("0")
    try:
        capsys.readouterr()
        from mlfn.cli.main import main

        assert main(["push", str(iris_dir), "--to", "ecr:iris-least", "--json"]) == 0
        err = capsys.readouterr().err
    finally:
        reset_auth("inf")
    assert "may not read the policy of ECR repository iris-least (ecr:GetRepositoryPolicy)" in err
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert repository_statements("iris-least") == [LAMBDA_PULLS]


def test_the_runtime_base_push_adds_no_lambda_statement(iris_dir: Path, aws: str, mlfn_home: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # what `mlfn runtime publish` does: Lambda pulls a model image from the model's repository, never the base's
    import argparse

    from mlfn.cli.commands.push import push_image
    from mlfn.cli.packaging import ecr, registry
    from mlfn.cli.packaging.source import PushSource

    built = mlfn_json(capsys, "build", str(iris_dir))
    source = PushSource.from_layout(Path(built["layout"]))
    args = argparse.Namespace(to="ecr:runtime-base", tag="lambda-test", plain_http=False)
    push_image(args, source, "runtime", ecr, registry, lambda_pulls=False)
    with pytest.raises(Exception, match="RepositoryPolicyNotFoundException"):
        boto3.client("ecr").get_repository_policy(repositoryName="runtime-base")
