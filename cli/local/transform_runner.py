"""A Batch Transform job created by any client (boto3 CreateTransformJob, a Step Functions task) runs here, in the
control plane, on the model's own image through the data plane, as SageMaker runs it on its instances.

The job's SageMaker model names an image in the emulator's ECR; the data plane serves that image as a container
(`sagemaker:transform.<job>`, the same sandbox machinery an endpoint gets) for as long as the job runs. The input is
every object under the `S3Prefix` (or each key a `ManifestFile` lists), read from the emulator's S3; `SplitType: Line`
makes each line a record, `BatchStrategy: MultiRecord` puts as many records in one `/invocations` request as fit in
`MaxPayloadInMB` (`SingleRecord`: one), with the job's `ContentType` and `Accept`, at most `MaxConcurrentTransforms`
requests at once per instance. The answers of an object, in order (`AssembleWith: Line`: one per line), are stored
as `<S3OutputPath>/<the object's path below the prefix>.out`, only once the whole object succeeded; a request that
is not answered 200 fails its object (no `.out`), the others go on, and the job ends `Failed` with a
`FailureReason` naming the object; otherwise `Completed`. StopTransformJob (`Stopping`) ends it `Stopped` without the
object it was working on.
"""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .config import TRANSFORM_PREFIX

MB = 1024 * 1024
DEFAULT_MAX_PAYLOAD_MB = 6  # CreateTransformJob: MaxPayloadInMB defaults to 6 MB
EMULATED_MAX_CONCURRENCY = 16  # requests in flight the emulator gives one job at most
EXTERNAL_TAG = "mlfn:runner"  # a job whose records a client scores itself (`mlfn batch --local` on a folder)


class JobFailed(Exception):
    """The job cannot run at all (its model, image or input); the message is its FailureReason."""


class ObjectFailed(Exception):
    """One input object failed (a request not answered 200); the message says which and why."""


def run_in_background(job: Any, control_url: str, state_dir: Path, region: str) -> None:
    """Run `job` (moto's FakeTransformJob, `InProgress`) on a thread of its own."""
    threading.Thread(target=_run, args=(job, control_url, state_dir, region),
                     name=f"mlfn-transform-{job.transform_job_name}", daemon=True).start()


def _end(job: Any, status: str, reason: str = "") -> None:
    from moto.core.utils import utcnow

    from .batch_transform import ENDED

    if job.transform_job_status in ENDED:
        return
    job.transform_job_status = status
    job.failure_reason = reason[:1024] if status == "Failed" else ""
    job.transform_end_time = job.last_modified_time = utcnow()


def _clients(control_url: str, region: str) -> Any:
    import boto3

    from ..aws.session import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

    def client(service: str, _region: str = region) -> Any:
        return boto3.client(service, endpoint_url=control_url, region_name=_region,
                            aws_access_key_id=LOCAL_ACCESS_KEY, aws_secret_access_key=LOCAL_SECRET_KEY)
    return client


def _run(job: Any, control_url: str, state_dir: Path, region: str) -> None:
    client = _clients(control_url, region)
    name = TRANSFORM_PREFIX + job.transform_job_name
    plane = None
    try:
        image, model_dir = _image(job, client, state_dir, region)
        from .data_plane import DataPlaneClient

        try:
            plane = DataPlaneClient(state_dir)
            plane.register_container(name, model_dir, kind="sagemaker", image=image, env=dict(job.environment or {}))
        except (RuntimeError, ValueError, OSError) as exc:
            raise JobFailed(f"the local emulator's data plane cannot run the model's image {image}: {exc}") from None
        _transform(job, client("s3"), name, state_dir)
    except JobFailed as exc:
        _end(job, "Failed", str(exc))
    except Exception as exc:  # anything unforeseen still ends the job, with its reason
        _end(job, "Failed", f"the local emulator could not run the job: {type(exc).__name__}: {exc}")
    finally:
        if plane is not None:
            with contextlib.suppress(Exception):  # the data plane went away: nothing to release
                plane.unregister(f"sagemaker:{name}")


def _image(job: Any, client: Any, state_dir: Path, region: str) -> tuple[str, Path]:
    """The model's image pinned to its digest, and its model folder (the reconciler's rule for endpoints)."""
    from .image_rootfs import ImageUnavailable
    from .reconciler import Reconciler

    try:
        described = client("sagemaker").describe_model(ModelName=job.model_name)
    except Exception as exc:
        raise JobFailed(f"Could not find model \"{job.model_name}\": {exc}") from None
    container = described.get("PrimaryContainer") or (described.get("Containers") or [{}])[0]
    shim = SimpleNamespace(plane=SimpleNamespace(state_dir=state_dir), _client=client)
    try:
        pinned, folder = Reconciler.image(shim, str(container.get("Image", "")), region)  # type: ignore[arg-type]
    except ImageUnavailable as exc:
        raise JobFailed(f"model {job.model_name}: {exc}") from None
    return pinned, folder


def input_keys(s3: Any, data_source: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(bucket, key, output name) of every input object: all under an `S3Prefix`, or each a `ManifestFile` lists
    (`[{"prefix": "s3://b/p/"}, "relative/key", ...]`), the output name being the key's path below the prefix."""
    source = data_source.get("S3DataSource") or {}
    kind, uri = source.get("S3DataType", "S3Prefix"), str(source.get("S3Uri", ""))
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise JobFailed(f"TransformInput.DataSource.S3DataSource.S3Uri {uri!r}: expected s3://BUCKET/PREFIX")
    if kind == "ManifestFile":
        try:
            document = json.loads(s3.get_object(Bucket=bucket, Key=prefix)["Body"].read())
            base = str(document[0]["prefix"])
            keys = [str(k) for k in document[1:]]
        except Exception as exc:
            raise JobFailed(f"manifest {uri}: expected a JSON list [{{\"prefix\": \"s3://...\"}}, \"key\", ...]: "
                            f"{exc}") from None
        mbucket, _, mprefix = base.removeprefix("s3://").partition("/")
        return [(mbucket, mprefix + key, key) for key in keys]
    if kind != "S3Prefix":
        raise JobFailed(f"S3DataType {kind!r}: the local emulator runs S3Prefix and ManifestFile inputs")
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith("/"):
                continue
            base = prefix if not prefix or prefix.endswith("/") else prefix.rsplit("/", 1)[0] + "/"
            found.append((bucket, key, key[len(base):] if base and key.startswith(base) else key))
    if not found:
        raise JobFailed(f"No S3 objects found under S3 URL \"{uri}\" given in input data source.")
    return found


def _requests(s3: Any, bucket: str, key: str, split: str, strategy: str, max_bytes: int) -> Iterator[bytes]:
    """The request bodies of one object: the whole object, or its lines grouped by the batch strategy."""
    from ..batch.batches import batches
    from ..batch.readers import lines

    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        if split != "Line":
            yield body.read()
            return
        records = lines(body.iter_chunks(64 * 1024))
        for batch in batches(records, 1 if strategy == "SingleRecord" else 1 << 30, max_bytes):
            yield b"\n".join(r.body for r in batch) + b"\n"
    finally:
        body.close()


def _invoke(state_dir: Path, name: str, headers: dict[str, str], body: bytes, max_bytes: int) -> bytes:
    from .lambda_api import call_data_plane

    if len(body) > max_bytes:
        raise ObjectFailed(f"a request of {len(body):,} bytes exceeds MaxPayloadInMB ({max_bytes // MB} MB)")
    answer = call_data_plane(state_dir, "/invoke-endpoint", {
        "endpoint": name, "headers": headers, "body": base64.b64encode(body).decode()},
        what=f"transform container {name}", timeout=660)
    reply = base64.b64decode(answer["body"])
    if int(answer["status"]) != 200:
        raise ObjectFailed(f"the model container answered /invocations with status {answer['status']}: "
                           f"{reply[:300].decode(errors='replace')}")
    return reply


def _transform(job: Any, s3: Any, name: str, state_dir: Path) -> None:
    source, output = job.transform_input or {}, job.transform_output or {}
    split, strategy = source.get("SplitType", "None"), job.batch_strategy or "SingleRecord"
    max_bytes = int(job.max_payload_in_mb or DEFAULT_MAX_PAYLOAD_MB) * MB
    resources = job.transform_resources or {}
    width = max(1, int(job.max_concurrent_transforms or 1)) * max(1, int(resources.get("InstanceCount", 1) or 1))
    headers = {k: v for k, v in (("content-type", source.get("ContentType")), ("accept", output.get("Accept")))
               if v}
    line = output.get("AssembleWith") == "Line"
    out_uri = str(output.get("S3OutputPath", ""))
    out_bucket, _, out_prefix = out_uri.removeprefix("s3://").partition("/")
    if out_prefix and not out_prefix.endswith("/"):
        out_prefix += "/"
    failed: list[str] = []
    with ThreadPoolExecutor(min(width, EMULATED_MAX_CONCURRENCY), thread_name_prefix="mlfn-transform") as pool:
        for bucket, key, relative in input_keys(s3, source.get("DataSource") or {}):
            if job.transform_job_status == "Stopping":
                return _end(job, "Stopped")
            with tempfile.TemporaryFile() as spool:
                try:
                    stopped = _object(pool, width, _requests(s3, bucket, key, split, strategy, max_bytes),
                                      lambda body: _invoke(state_dir, name, headers, body, max_bytes), spool, line, job)
                except ObjectFailed as exc:
                    failed.append(f"s3://{bucket}/{key}: {exc}")
                    continue
                if stopped:
                    return _end(job, "Stopped")
                spool.seek(0)
                s3.upload_fileobj(spool, out_bucket, f"{out_prefix}{relative}.out")
    if failed:
        return _end(job, "Failed", f"ClientError: {len(failed)} input object(s) failed; {failed[0]}")
    return _end(job, "Completed")


def _object(pool: ThreadPoolExecutor, width: int, bodies: Iterator[bytes], invoke: Any, spool: Any, line: bool,
            job: Any) -> bool:
    """Send the object's requests (at most `width` in flight), writing the answers in order; True when stopped."""
    pending: deque[Future[bytes]] = deque()

    def write(reply: bytes) -> None:
        spool.write(reply)
        if line and reply and not reply.endswith(b"\n"):
            spool.write(b"\n")

    try:
        for body in bodies:
            if job.transform_job_status == "Stopping":
                return True
            if len(pending) >= width:
                write(pending.popleft().result())
            pending.append(pool.submit(invoke, body))
        while pending:
            write(pending.popleft().result())
    finally:
        for future in pending:
            future.cancel()
    return False
