"""A batch job: every input object under the input prefix, streamed in calls of several records, results to
`<name>.out` and error records to `<name>.err` under the output prefix.

Its states are those of a SageMaker Batch Transform job (`TransformJobStatus`): `InProgress` while it runs,
`Completed`, `Failed` (with a `FailureReason`: more failed records than `max_failed_percent` allows, or an object
that could not be read or written) or `Stopped` (interrupted: `--resume` goes on from the last checkpoint). The
state is kept in `<work>/<job>/job.json` while and after the job runs.
"""

from __future__ import annotations

import hashlib
import json
import resource
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .batches import Call, calls, whole
from .invokers import Outcome, Send, call
from .locations import ERR_SUFFIX, OUT_SUFFIX, S3Location, output_key
from .prefetch import ahead
from .progress import Progress
from .readers import format_of
from .writers import Spool, spool_folder

READ_CHUNK = 1 << 20
READ_AHEAD = 4  # chunks read ahead of the calls: memory stays a few MB however large the object


@dataclass(frozen=True)
class JobSettings:
    """The `[batch]` settings a run uses (mlfn.toml, overridden by options)."""

    records_per_call: int = 64
    max_payload_mb: float = 6.0
    concurrency: int = 1
    max_failed_percent: float = 100.0  # more failed records than this share of all: the job is Failed
    instance_type: str = "ml.m5.large"  # recorded on the emulator's transform job (Batch Transform's resources)
    instance_count: int = 1


class JobStopped(Exception):
    """The job was interrupted; its state is Stopped and `--resume` goes on from its checkpoint."""


def job_key(source: S3Location, target: S3Location, model: str) -> str:
    return hashlib.sha256(f"{source.uri}\0{target.uri}\0{model}".encode()).hexdigest()[:16]


def input_objects(s3: Any, source: S3Location, target: S3Location) -> list[tuple[str, int]]:
    """(key, size) of every input object, leaving out folders and anything a batch writes (`.out`, `.err`, or
    under the output prefix when it lies inside the input prefix)."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=source.prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            inside_output = source.bucket == target.bucket and target.prefix and key.startswith(target.prefix)
            if key.endswith(("/", OUT_SUFFIX, ERR_SUFFIX)) or inside_output:
                continue
            found.append((key, int(item["Size"])))
    return found


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except Exception as exc:  # botocore ClientError 404
        if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def _chunks(s3: Any, bucket: str, key: str) -> Iterator[bytes]:
    """The object's bytes in READ_CHUNK pieces, read READ_AHEAD chunks ahead in a thread while calls run."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        yield from ahead(body.iter_chunks(READ_CHUNK), READ_AHEAD)
    finally:
        body.close()


class Job:
    def __init__(self, s3: Any, source: S3Location, target: S3Location, send: Send, settings: JobSettings, *,
                 model: str, work_dir: Path, resume: bool = False, say: Callable[[str], None] | None = None,
                 record: Any = None) -> None:
        self.s3, self.source, self.target, self.send, self.settings = s3, source, target, send, settings
        self.model, self.resume, self.say = model, resume, say
        self.record = record  # a TransformRecord (the emulator's transform job), or None
        self.key = job_key(source, target, model)
        self.folder = work_dir / self.key
        self.state: dict[str, Any] = {}

    def _set(self, status: str, **fields: Any) -> None:
        self.state.update(TransformJobStatus=status, **fields)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "job.json").write_text(json.dumps(self.state, indent=1), encoding="utf-8")
        if self.record is not None and status != "InProgress":
            self.record.end(status, str(fields.get("FailureReason", "")))

    def run(self) -> dict[str, Any]:
        """Run to the end; returns the summary (the final job.json). Raises JobStopped when interrupted."""
        started = time.perf_counter()
        objects = input_objects(self.s3, self.source, self.target)
        if not objects:
            raise FileNotFoundError(f"no input objects under {self.source.uri}")
        if self.record is not None:
            self.record.start()
        name = self.record.name if self.record is not None else f"mlfn-batch-{self.key}"
        self._set("InProgress", TransformJobName=name, ModelName=self.model, Input=self.source.uri,
                  Output=self.target.uri, Objects=len(objects))
        progress = Progress(sum(size for _, size in objects), self.say)
        skipped = 0
        base = 0
        try:
            for key, size in objects:
                if not self._run_object(key, base, progress):
                    skipped += 1
                base += size
                progress.add(0, 0, base)
        except KeyboardInterrupt:
            self._set("Stopped", **self._counts(progress, started, skipped))
            raise JobStopped(f"stopped after {progress.records:,} records; run again with --resume") from None
        except Exception as exc:
            self._set("Failed", FailureReason=str(exc)[:1024], **self._counts(progress, started, skipped))
            raise
        limit = self.settings.max_failed_percent
        counts = self._counts(progress, started, skipped)
        if progress.failed and progress.failed * 100 > limit * max(progress.records, 1):
            self._set("Failed", FailureReason=f"{progress.failed} of {progress.records} records failed; [batch] "
                      f"max_failed_percent allows {limit:g}% (each is in its object's {ERR_SUFFIX} file)", **counts)
        else:
            self._set("Completed", **counts)
        return self.state

    @staticmethod
    def _counts(progress: Progress, started: float, skipped: int) -> dict[str, Any]:
        seconds = time.perf_counter() - started
        rate = round(progress.records / seconds, 1) if seconds else 0.0
        return {"Records": progress.records, "FailedRecords": progress.failed, "SkippedObjects": skipped,
                "Seconds": round(seconds, 3), "RecordsPerSecond": rate,
                "PeakMemoryMB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}

    def _run_object(self, key: str, base: int, progress: Progress) -> bool:
        """Score one object; False when `--resume` finds it done already."""
        uri = f"s3://{self.source.bucket}/{key}"
        out_key = output_key(key, self.source, self.target)
        err_key = output_key(key, self.source, self.target, ERR_SUFFIX)
        folder = spool_folder(self.folder, "objects", uri)
        if self.resume and not (folder / "checkpoint.json").is_file() and _exists(self.s3, self.target.bucket,
                                                                                   out_key):
            return False
        spool = Spool(folder, uri, resume=self.resume)
        content_type, by_line = format_of(key)
        chunks = _chunks(self.s3, self.source.bucket, key)
        todo: Iterator[Call]
        if by_line:
            todo = calls(chunks, self.settings.records_per_call, int(self.settings.max_payload_mb * 2**20),
                         skip=spool.done)
        elif spool.done:
            todo = iter(())
        else:
            todo = iter([whole(b"".join(chunks))])
        try:
            for batch, outcomes in self._scored(todo, content_type, by_line):
                failed = spool.add(batch, outcomes)
                progress.add(len(batch.lines), failed, base + batch.end)
                if self.record is not None and self.record.stopping():
                    raise KeyboardInterrupt  # StopTransformJob: stop as an interruption does (resumable)
        finally:
            spool.close()
        spool.upload(self.s3, self.target.bucket, out_key, err_key)
        return True

    def _scored(self, todo: Iterator[Call], content_type: str,
                by_line: bool) -> Iterator[tuple[Call, list[Outcome]]]:
        """Each call's records with their outcomes, in input order, with up to `concurrency` calls in flight
        (and no more read ahead than that: memory stays flat however large the input)."""
        width = max(1, self.settings.concurrency)
        if width == 1:
            for batch in todo:
                yield batch, call(self.send, batch.body, len(batch.lines), content_type, by_line)
            return
        pending: deque[tuple[Call, Future[list[Outcome]]]] = deque()
        with ThreadPoolExecutor(width, thread_name_prefix="mlfn-batch") as pool:
            try:
                for batch in todo:
                    pending.append((batch, pool.submit(call, self.send, batch.body, len(batch.lines), content_type,
                                                       by_line)))
                    if len(pending) >= width:
                        done, future = pending.popleft()
                        yield done, future.result()
                while pending:
                    done, future = pending.popleft()
                    yield done, future.result()
            finally:
                for _, future in pending:
                    future.cancel()
