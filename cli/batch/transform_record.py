"""A local batch's record as a SageMaker transform job in the emulator, so that DescribeTransformJob (boto3, the AWS
CLI) shows it as AWS shows a Batch Transform job: `InProgress` while it runs, then `Completed`, `Failed` (with its
`FailureReason`) or `Stopped`; StopTransformJob (`Stopping`) stops it. The emulator side is
`mlfn.cli.local.batch_transform`: the job reports its end with the tags that module reads.

With `timeout_s` (`[batch] timeout_s`, the batch state machine's TimeoutSeconds) the job stops once it has run that
long, as the state machine's execution would time out: `Stopped`, and `--resume` goes on from its checkpoint.
"""

from __future__ import annotations

import time
from typing import Any

from mlfn.runtime.multi_record import CONTENT_TYPE as JSONL

from ..local.batch_transform import REASON_TAG, STATUS_TAG
from ..local.transform_runner import EXTERNAL_TAG


class TransformRecord:
    """CreateTransformJob at the start, a look for `Stopping` at most every `poll_s`, the end reported."""

    def __init__(self, sagemaker: Any, name: str, model: str, source_uri: str, target_uri: str, settings: Any,
                 poll_s: float = 1.0, timeout_s: float | None = None) -> None:
        self.sagemaker, self.name, self.model = sagemaker, name, model
        self.source_uri, self.target_uri, self.settings, self.poll_s = source_uri, target_uri, settings, poll_s
        self.timeout_s = timeout_s
        self.timed_out = False
        self.arn = ""
        self._looked = 0.0
        self._started = 0.0

    def start(self) -> None:
        s = self.settings
        self.arn = self.sagemaker.create_transform_job(
            TransformJobName=self.name, ModelName=self.model, BatchStrategy="MultiRecord",
            MaxPayloadInMB=int(s.max_payload_mb), MaxConcurrentTransforms=int(s.concurrency),
            TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.source_uri}},
                            "ContentType": JSONL, "SplitType": "Line"},
            TransformOutput={"S3OutputPath": self.target_uri, "Accept": JSONL, "AssembleWith": "Line"},
            TransformResources={"InstanceType": s.instance_type, "InstanceCount": int(s.instance_count)},
            Tags=[{"Key": EXTERNAL_TAG, "Value": "mlfn batch"}],  # this process scores the records, not the emulator
        )["TransformJobArn"]
        self._looked = self._started = time.monotonic()

    def stopping(self) -> bool:
        """Whether the job must stop: it ran `timeout_s`, or StopTransformJob was called (looked up at most every
        `poll_s` seconds)."""
        if self.timeout_s is not None and time.monotonic() - self._started >= self.timeout_s:
            self.timed_out = True
            return True
        if time.monotonic() - self._looked < self.poll_s:
            return False
        self._looked = time.monotonic()
        status = self.sagemaker.describe_transform_job(TransformJobName=self.name)["TransformJobStatus"]
        return bool(status == "Stopping")

    def end(self, status: str, reason: str = "") -> None:
        tags = [{"Key": STATUS_TAG, "Value": status}]
        if reason:
            tags.append({"Key": REASON_TAG, "Value": reason[:256]})
        self.sagemaker.add_tags(ResourceArn=self.arn, Tags=tags)
