"""Batch Transform jobs in the emulator, with the statuses AWS gives them.

moto records a transform job as `Completed` the moment it is created, and has no StopTransformJob. Here a job
starts `InProgress` and runs on its model's image (`transform_runner`), whoever created it, unless it is tagged
`mlfn:runner` (a client that scores the records itself and reports the end, below); StopTransformJob turns it
`Stopping` (400 ValidationException for a job that has ended); a tagged job's runner (`mlfn batch --local` on a
model folder, which scores the records through the runtime every endpoint runs) reports the end by
tagging the job `mlfn:status` = `Completed` | `Failed` | `Stopped` (and `mlfn:failure-reason`), which
DescribeTransformJob shows as `TransformJobStatus`, `FailureReason` and `TransformEndTime`. A runner that finds its
job `Stopping` stops and reports `Stopped`.

The jobs are moto's, so they survive `mlfn local stop`/`start`; a job still `InProgress` (or `Stopping`) when the
emulator stopped has lost its runner's reports: on the next start (`recover`) it is `Failed` with a FailureReason
naming the restart (`mlfn batch --local --resume` goes on from its checkpoint).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

STATUS_TAG = "mlfn:status"
REASON_TAG = "mlfn:failure-reason"
ENDED = ("Completed", "Failed", "Stopped")
_installed = False


def install() -> None:
    """Patch moto's SageMaker (in this process). Idempotent."""
    global _installed
    if _installed:
        return
    from moto.core.utils import utcnow
    from moto.sagemaker import models as sm_models
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import EmptyResult

    from .sagemaker_api import MlfnSageMakerResponse

    original_init = sm_models.FakeTransformJob.__init__
    original_create = sm_models.SageMakerModelBackend.create_transform_job
    original_add_tags = sm_models.SageMakerModelBackend.add_tags

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.tags = list(self.tags or [])
        self.transform_job_status = "InProgress"
        self.transform_end_time = None

    def create_transform_job(self: Any, *args: Any, **kwargs: Any) -> Any:
        external = _runs_itself(SimpleNamespace(tags=kwargs.get("tags")))
        if not external:  # ModelName must name an existing model: moto's ValidationError "Could not find model"
            self.describe_model(kwargs.get("model_name", args[1] if len(args) > 1 else ""))
        job = original_create(self, *args, **kwargs)
        if not external:
            _run(job, self.region_name)
        return job

    def add_tags(self: Any, arn: str, tags: list[dict[str, str]]) -> list[dict[str, str]]:
        resource = self._get_resource_from_arn(arn)
        if isinstance(resource, sm_models.FakeTransformJob):
            resource.tags = list(resource.tags or [])
            reported = {t["Key"]: t["Value"] for t in tags}
            status = reported.get(STATUS_TAG)
            if status is not None and resource.transform_job_status not in ENDED and status in ENDED:
                resource.transform_job_status = status
                resource.failure_reason = reported.get(REASON_TAG, "") if status == "Failed" else ""
                resource.transform_end_time = resource.last_modified_time = utcnow()
        return original_add_tags(self, arn, tags)  # type: ignore[no-any-return]

    def stop_transform_job(self: Any, transform_job_name: str) -> None:
        self.describe_transform_job(transform_job_name)  # the ValidationException for an unknown job
        job = self.transform_jobs[transform_job_name]
        if job.transform_job_status in ENDED:
            # StopTrainingJob's words for a job that has ended (awslabs/benchmark-ai#928); AWS documents none for
            # StopTransformJob, so the same sentence with "transform job"
            raise ValidationError(message="The request was rejected because the transform job is in status "
                                          f"{job.transform_job_status}.")
        job.transform_job_status = "Stopping"
        job.last_modified_time = utcnow()

    def stop_response(self: Any) -> Any:
        self.sagemaker_backend.stop_transform_job(self._get_param("TransformJobName"))
        return EmptyResult()

    sm_models.FakeTransformJob.__init__ = init  # type: ignore[method-assign]
    sm_models.SageMakerModelBackend.create_transform_job = create_transform_job  # type: ignore[method-assign]
    sm_models.SageMakerModelBackend.add_tags = add_tags  # type: ignore[method-assign]
    sm_models.SageMakerModelBackend.stop_transform_job = stop_transform_job  # type: ignore[attr-defined]
    MlfnSageMakerResponse.stop_transform_job = stop_response  # type: ignore[attr-defined]
    _installed = True


def _runs_itself(job: Any) -> bool:
    """Whether a client scores the job's records itself (`mlfn batch --local`, tag `mlfn:runner`)."""
    from .transform_runner import EXTERNAL_TAG

    tags = job.tags if isinstance(job.tags, list) else [{"Key": k, "Value": v} for k, v in (job.tags or {}).items()]
    return any(t.get("Key") == EXTERNAL_TAG for t in tags)


def _run(job: Any, region: str) -> None:
    """Start the job on the model's image (`transform_runner`), or fail it when no control plane URL is known."""
    from pathlib import Path

    from . import distributed_map
    from .emulated_stores import STORES
    from .transform_runner import run_in_background

    if not distributed_map.control_url() or STORES.state_dir is None:
        job.transform_job_status, job.failure_reason = "Failed", "the local emulator's control plane is not running"
        return
    run_in_background(job, distributed_map.control_url(), Path(STORES.state_dir), region)


RESTART_REASON = ("The local emulator stopped while this job ran (`mlfn local stop`); its end was not recorded. "
                  "`mlfn batch --local --resume` goes on from the last checkpoint.")


def recover() -> int:
    """After the emulator's state was loaded: jobs that had not ended are `Failed` with RESTART_REASON."""
    from moto.core.utils import utcnow
    from moto.sagemaker.models import sagemaker_backends

    ended = 0
    for regions in list(sagemaker_backends.values()):
        for backend in list(regions.values()):
            for job in backend.transform_jobs.values():
                if getattr(job, "transform_job_status", None) in ("InProgress", "Stopping"):
                    job.transform_job_status, job.failure_reason = "Failed", RESTART_REASON
                    job.transform_end_time = job.last_modified_time = utcnow()
                    ended += 1
    return ended
