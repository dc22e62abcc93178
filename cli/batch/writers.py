"""One input object's results while it runs, and what `--resume` reads.

Answer lines go to a local spool (`out`: one line per record, in input order; `err`: one error record per failed
record, naming the object, the line and why); a checkpoint notes how many records and bytes of each file are final,
at most every CHECKPOINT_S seconds and whenever the spool is closed (an interruption included). When the object is
done both are uploaded as `<name>.out` and `<name>.err` (the `.err` only when a record failed) and the spool is
removed. A resumed object truncates its spool to the checkpoint and goes on after the records it counts: after an
interruption nothing is scored twice, after a crash at most CHECKPOINT_S of work is, and nothing is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import orjson

from .batches import Call
from .invokers import Outcome

CHECKPOINT_S = 1.0  # a crash (not an interruption) redoes at most this much work on --resume


class Spool:
    """The local files of one input object under `folder`."""

    def __init__(self, folder: Path, uri: str, *, resume: bool) -> None:
        self.folder, self.uri = folder, uri
        self.done = self.failed = 0
        if resume and (folder / "checkpoint.json").is_file():
            point = json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))
            self.done, self.failed = int(point["records"]), int(point["failed"])
            for name in ("out", "err"):
                with open(folder / name, "ab") as f:
                    f.truncate(int(point[name]))
        else:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            (folder / "out").touch()
            (folder / "err").touch()
        self._out = open(folder / "out", "ab")  # noqa: SIM115 - closed in close()
        self._err = open(folder / "err", "ab")  # noqa: SIM115
        self._saved = time.monotonic()

    def add(self, call: Call, outcomes: list[Outcome]) -> int:
        """Write one call's answers; returns how many records failed."""
        failed = 0
        for line, outcome in zip(call.lines, outcomes, strict=True):
            if not outcome.ok:
                failed += 1
                reason = orjson.loads(outcome.line)
                self._err.write(orjson.dumps({"object": self.uri, "line": line, "error": reason.get("error"),
                                              "status": reason.get("status")}) + b"\n")
        self._out.write(b"\n".join([outcome.line for outcome in outcomes]) + b"\n")
        self.done += len(outcomes)
        self.failed += failed
        if time.monotonic() - self._saved >= CHECKPOINT_S:
            self._checkpoint()
        return failed

    def _checkpoint(self) -> None:
        self._out.flush()
        self._err.flush()
        point = {"records": self.done, "failed": self.failed, "out": self._out.tell(), "err": self._err.tell()}
        tmp = self.folder / "checkpoint.tmp"
        tmp.write_text(json.dumps(point), encoding="utf-8")
        os.replace(tmp, self.folder / "checkpoint.json")
        self._saved = time.monotonic()

    def close(self) -> None:
        """Checkpoint what is written (an interrupted job resumes right after it) and close the files."""
        if not self._out.closed:
            self._checkpoint()
        self._out.close()
        self._err.close()

    def upload(self, s3: Any, bucket: str, out_key: str, err_key: str) -> None:
        """Put `<name>.out` (and `<name>.err` when a record failed, else remove a stale one), then drop the spool."""
        from boto3.s3.transfer import TransferConfig

        self.close()
        one_part_at_a_time = TransferConfig(use_threads=False)  # memory stays one part (8 MB), however large
        s3.upload_file(str(self.folder / "out"), bucket, out_key, Config=one_part_at_a_time)
        if self.failed:
            s3.upload_file(str(self.folder / "err"), bucket, err_key, Config=one_part_at_a_time)
        else:
            s3.delete_object(Bucket=bucket, Key=err_key)
        shutil.rmtree(self.folder, ignore_errors=True)


def spool_folder(root: Path, job_key: str, object_uri: str) -> Path:
    digest = hashlib.sha256(object_uri.encode()).hexdigest()[:16]
    return root / job_key / digest
