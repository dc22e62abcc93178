"""Push an image to Amazon ECR through the ECR API (boto3): no Docker, no registry login.

Layers and the config are checked with BatchCheckLayerAvailability and only the missing ones go up through
InitiateLayerUpload / UploadLayerPart / CompleteLayerUpload; PutImage then stores the manifest under a tag.
An image already tagged so is left alone, so re-pushing an unchanged image sends nothing.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .progress import Progress, PushReport, Say
from .source import PushError, PushSource

ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
REPO_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
CHECK_BATCH = 100


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


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


def push(source: PushSource, client: Any, repository: str, tag: str, say: Say, create: bool = True) -> PushReport:
    started = time.perf_counter()
    repo = ensure_repository(client, repository, create)
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
