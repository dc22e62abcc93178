"""Push an image to Amazon ECR through the ECR API (boto3): no Docker, no registry login.

Layers and the config are checked with BatchCheckLayerAvailability and only the missing ones go up through
InitiateLayerUpload / UploadLayerPart / CompleteLayerUpload; PutImage then stores the manifest under a tag.
An image already tagged so is left alone, so re-pushing an unchanged image sends nothing.

Lambda pulls a function's image as the service principal `lambda.amazonaws.com`, which the repository policy must
allow (`ecr:BatchGetImage`, `ecr:GetDownloadUrlForLayer`). Lambda adds that statement itself only when whoever
creates or updates the function may call `ecr:GetRepositoryPolicy` and `ecr:SetRepositoryPolicy`, so a
least-privilege deployer would fail. `allow_lambda_pulls` sets it when mlfn pushes (the statement AWS documents,
held to functions of the repository's own account and region by `aws:sourceArn`); after that a deployer needs
neither permission.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from .progress import Progress, PushReport, Say
from .source import PushError, PushSource

ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
REPO_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
CHECK_BATCH = 100
LAMBDA_PULL_SID = "LambdaECRImageRetrievalPolicy"
DENIED = ("AccessDeniedException", "AccessDenied")


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _denied(exc: Exception) -> bool:
    """AccessDeniedException, or any 403 (whatever the error document's shape)."""
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _error_code(exc) in DENIED or status == 403


def ensure_repository(client: Any, name: str, create: bool = True) -> dict[str, Any]:
    """The repository, created (scan on push, mutable tags) when missing and `create` allows it."""
    if not REPO_NAME.match(name) or len(name) > 256:
        raise PushError(f"{name!r} is not a valid ECR repository name (lowercase letters, digits, . _ - /)")
    try:
        repo: dict[str, Any] = client.describe_repositories(repositoryNames=[name])["repositories"][0]
        return repo
    except Exception as exc:
        if _error_code(exc) != "RepositoryNotFoundException":
            raise
        if not create:
            raise PushError(f"ECR repository {name} does not exist") from None
    created: dict[str, Any] = client.create_repository(
        repositoryName=name, imageTagMutability="MUTABLE",
        imageScanningConfiguration={"scanOnPush": True},
    )["repository"]
    return created


def lambda_pull_statement(repository_arn: str) -> dict[str, Any]:
    """The repository-policy statement that lets Lambda pull images for functions of the repository's account and
    region (AWS Lambda developer guide, "Amazon ECR permissions"; partition from the repository's ARN)."""
    _, partition, _, region, account, _ = repository_arn.split(":", 5)
    return {
        "Sid": LAMBDA_PULL_SID,
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        "Condition": {"StringLike": {"aws:sourceArn": f"arn:{partition}:lambda:{region}:{account}:function:*"}},
    }


def allow_lambda_pulls(client: Any, repo: dict[str, Any], say: Say) -> str:
    """Make sure the repository policy lets Lambda pull: "present", "added", or "unknown" when the caller may not
    read or set the policy (said in one line; the deploy then works only if the statement is already there)."""
    name = repo["repositoryName"]
    statements: list[dict[str, Any]] = []
    try:
        text = client.get_repository_policy(repositoryName=name)["policyText"]
        statements = list(json.loads(text).get("Statement", []))
    except Exception as exc:
        code = _error_code(exc)
        if _denied(exc):
            say(f"  note: may not read the policy of ECR repository {name} (ecr:GetRepositoryPolicy): it must "
                f"allow lambda.amazonaws.com ecr:BatchGetImage and ecr:GetDownloadUrlForLayer for Lambda to pull")
            return "unknown"
        if code != "RepositoryPolicyNotFoundException":
            raise
    if any(s.get("Sid") == LAMBDA_PULL_SID for s in statements):
        return "present"
    policy = {"Version": "2012-10-17", "Statement": [*statements, lambda_pull_statement(repo["repositoryArn"])]}
    try:
        client.set_repository_policy(repositoryName=name, policyText=json.dumps(policy))
    except Exception as exc:
        if not _denied(exc):
            raise
        say(f"  note: may not set the policy of ECR repository {name} (ecr:SetRepositoryPolicy): Lambda can pull "
            f"from it only if someone who may adds statement {LAMBDA_PULL_SID} (see docs/deploy.md)")
        return "unknown"
    say(f"  repository policy of {name}: Lambda may pull ({LAMBDA_PULL_SID})")
    return "added"


def _available(client: Any, repo: str, wanted: list[str]) -> set[str]:
    have: set[str] = set()
    for i in range(0, len(wanted), CHECK_BATCH):
        resp = client.batch_check_layer_availability(repositoryName=repo, layerDigests=wanted[i : i + CHECK_BATCH])
        have.update(layer["layerDigest"] for layer in resp.get("layers", [])
                    if layer.get("layerAvailability") == "AVAILABLE")
    return have


def _already_tagged(client: Any, repo: str, digest: str, tag: str) -> bool:
    resp = client.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": digest}])
    for img in resp.get("images", []):
        if img.get("imageId", {}).get("imageTag") == tag:
            return True
    # moto and ECR list one entry per tag: ask describe_images for the full tag list too
    try:
        details = client.describe_images(repositoryName=repo, imageIds=[{"imageDigest": digest}])["imageDetails"]
    except Exception as exc:
        if _error_code(exc) in ("ImageNotFoundException",):
            return False
        raise
    return any(tag in d.get("imageTags", []) for d in details)


def push(source: PushSource, client: Any, repository: str, tag: str, say: Say, create: bool = True,
         lambda_pulls: bool = True) -> PushReport:
    """Push the image; with `lambda_pulls` (a model image) the repository policy also lets Lambda pull it."""
    started = time.perf_counter()
    repo = ensure_repository(client, repository, create)
    if lambda_pulls:
        allow_lambda_pulls(client, repo, say)
    report = PushReport(reference=f"{repo['repositoryUri']}@{source.image.digest}", digest=source.image.digest)
    progress = Progress(say, report)
    blobs = source.blobs()
    have = _available(client, repository, sorted({d.digest for d, _ in blobs}))
    for desc, kind in blobs:
        if desc.digest in have:
            progress.skip(desc, kind)
            continue
        if not source.has(desc):
            raise PushError(f"{kind} {desc.digest} of base {source.base_reference or '?'} is neither in the local "
                            f"layout nor in ECR repository {repository}: push the base first (`mlfn runtime publish`)"
                            " or build on a local base")
        _upload(client, repository, source, desc, kind, progress)
        have.add(desc.digest)
    if _already_tagged(client, repository, source.image.digest, tag):
        say(f"  manifest {source.image.digest[:19]} already tagged {tag}: nothing to do")
    else:
        try:
            client.put_image(repositoryName=repository, imageManifest=source.image.manifest_bytes.decode(),
                             imageManifestMediaType=source.image.manifest_media_type, imageTag=tag,
                             imageDigest=source.image.digest)
            report.manifest_put = True
            say(f"  manifest {source.image.digest[:19]} tagged {tag}")
        except Exception as exc:
            if _error_code(exc) != "ImageAlreadyExistsException":
                raise
    report.seconds = time.perf_counter() - started
    return report


def _upload(client: Any, repo: str, source: PushSource, desc: Any, kind: str, progress: Progress) -> None:
    progress.start(desc, kind)
    init = client.initiate_layer_upload(repositoryName=repo)
    upload_id, part_size = init["uploadId"], int(init.get("partSize") or 10 << 20)
    first = 0
    for chunk in source.chunks(desc, part_size):
        client.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=first,
                                 partLastByte=first + len(chunk) - 1, layerPartBlob=chunk)
        first += len(chunk)
        progress.advance(len(chunk))
    done = client.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[desc.digest])
    if done.get("layerDigest") != desc.digest:
        raise PushError(f"ECR computed {done.get('layerDigest')} for {kind} {desc.digest}: the blob changed on disk")
    progress.finish(desc.digest)
