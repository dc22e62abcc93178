"""Refuse a model a target cannot run before any synth: one line naming the setting and what would work.

`load_spec` already checks each setting's type and range; these are the rules that depend on the target
(which a caller may override) and on AWS's limits for it.
"""

from __future__ import annotations

from mlfn.runtime.errors import MlfnError, SpecError
from mlfn.runtime.settings import TARGETS
from mlfn.runtime.spec import CONFIG_FILE, ModelSpec

from .instance_types import ECS_GPU_TYPES, SAGEMAKER_TYPES, InstanceType, families

GIB = 1024**3
MIB = 1024**2
# Lambda's limit on a container image, uncompressed, all layers included.
LAMBDA_IMAGE_LIMIT_BYTES = 10 * GIB
# What mlfn's Lambda runtime base takes of that limit (Python, onnxruntime, numpy, FastAPI), rounded up.
LAMBDA_BASE_IMAGE_BYTES = 1 * GIB
# ECS reserves memory on each instance for the agent and the OS; a task may use what is left.
ECS_RESERVED_MIB = 1024
# ECS LINEAR: stepPercent 3.0..100.0; LINEAR/CANARY: step bake 0..1440 minutes.
ECS_LINEAR_MIN_PERCENT = 3
ECS_MAX_BAKE_MINUTES = 1440


class InfraError(MlfnError):
    """A request mlfn's infrastructure cannot honour (unknown target or stage, malformed image URI)."""


def directory_bytes(spec: ModelSpec) -> int:
    """Bytes the model directory adds to an image."""
    return sum(p.stat().st_size for p in spec.directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _bad(field: str, expected: str, found: str) -> SpecError:
    return SpecError(CONFIG_FILE, field, expected, found)


def check_stage(spec: ModelSpec, stage: str) -> None:
    if stage not in spec.settings.stages:
        raise InfraError(
            f"stage {stage!r} is not one of {spec.name}'s stages ({', '.join(spec.settings.stages)}); "
            f"add it to `stages` in {CONFIG_FILE}"
        )


def check_lambda(spec: ModelSpec) -> None:
    s = spec.settings
    lam = s.lambda_
    if s.gpu:
        raise _bad("gpu", "target sagemaker or ecs: Lambda has no GPUs", "gpu = true with target lambda")
    size = directory_bytes(spec)
    if size + LAMBDA_BASE_IMAGE_BYTES > LAMBDA_IMAGE_LIMIT_BYTES:
        raise _bad("target", f"sagemaker or ecs: the model directory ({size / GIB:.1f} GiB) plus the runtime "
                   f"(~{LAMBDA_BASE_IMAGE_BYTES / GIB:.0f} GiB) exceeds Lambda's 10 GiB image limit", "'lambda'")
    if spec.model_bytes > lam.memory_mb * MIB:
        raise _bad("lambda.memory_mb", f"more than the model file ({spec.model_bytes / MIB:.0f} MiB) so it can load",
                   str(lam.memory_mb))
    for i, sched in enumerate(lam.schedules):
        if sched.max > lam.provisioned_max:
            raise _bad(f"lambda.schedules[{i}].max", f"at most lambda.provisioned_max ({lam.provisioned_max})",
                       str(sched.max))


def _instance(table: dict[str, InstanceType], field: str, name: str) -> InstanceType:
    if name not in table:
        raise _bad(field, f"a known instance type ({families(table)})", repr(name))
    return table[name]


def check_sagemaker(spec: ModelSpec) -> None:
    s = spec.settings
    sm = s.sagemaker
    if sm.serverless:
        if s.gpu or sm.gpus_per_copy:
            raise _bad("sagemaker.serverless", "false for a GPU model: serverless is CPU only", "true")
        if spec.model_bytes > sm.serverless_memory_mb * MIB:
            raise _bad("sagemaker.serverless_memory_mb",
                       f"more than the model file ({spec.model_bytes / MIB:.0f} MiB)", str(sm.serverless_memory_mb))
        return
    itype = _instance(SAGEMAKER_TYPES, "sagemaker.instance_type", sm.instance_type)
    if (s.gpu or sm.gpus_per_copy) and not itype.gpus:
        raise _bad("sagemaker.instance_type", "a GPU instance type (ml.g4dn, ml.g5, ml.g6, ml.g6e, ml.p3, ml.p4d, "
                   "ml.p5) for a GPU model", repr(sm.instance_type))
    fits = (
        ("sagemaker.cpus_per_copy", sm.cpus_per_copy, itype.vcpus, "vCPUs"),
        ("sagemaker.memory_per_copy_mb", sm.memory_per_copy_mb, itype.memory_mib, "MiB"),
        ("sagemaker.gpus_per_copy", sm.gpus_per_copy, itype.gpus, "GPUs"),
    )
    for field, wanted, available, unit in fits:
        if wanted > available:
            raise _bad(field, f"at most the {available} {unit} of {sm.instance_type}", str(wanted))


def check_ecs(spec: ModelSpec) -> None:
    ecs = spec.settings.ecs
    itype = _instance(ECS_GPU_TYPES, "ecs.instance_type", ecs.instance_type)
    if ecs.gpus < 1:
        raise _bad("ecs.gpus", "1 or more: the ECS target runs GPU tasks (use lambda or sagemaker for CPU models)",
                   str(ecs.gpus))
    fits = (
        ("ecs.gpus", ecs.gpus, itype.gpus, "GPUs"),
        ("ecs.cpu", ecs.cpu, itype.vcpus * 1024, "CPU units"),
        ("ecs.memory_mb", ecs.memory_mb, itype.memory_mib - ECS_RESERVED_MIB, "MiB left for tasks"),
    )
    for field, wanted, available, unit in fits:
        if wanted > available:
            raise _bad(field, f"at most the {available} {unit} of {ecs.instance_type}", str(wanted))
    check_ecs_rollout(spec)


def check_ecs_rollout(spec: ModelSpec) -> None:
    """Refuse the `[rollout]` values ECS's LINEAR/CANARY strategies do not take (ECS API "LinearConfiguration",
    "CanaryConfiguration"): a linear step below 3% (stepPercent 3.0..100.0; a canary takes 0.1..100.0, which every
    allowed `percent` is) and a bake longer than 1440 minutes (stepBakeTimeInMinutes / canaryBakeTimeInMinutes)."""
    rollout = spec.settings.rollout
    if rollout.strategy == "all_at_once":
        return
    if rollout.strategy == "linear" and rollout.percent < ECS_LINEAR_MIN_PERCENT:
        raise _bad("rollout.percent", f"at least {ECS_LINEAR_MIN_PERCENT} with strategy linear on target ecs (ECS "
                   "LINEAR shifts 3.0 to 100.0 percent per step); or strategy canary, which takes any percent",
                   str(rollout.percent))
    if rollout.interval_minutes > ECS_MAX_BAKE_MINUTES:
        raise _bad("rollout.interval_minutes", f"at most {ECS_MAX_BAKE_MINUTES} on target ecs (ECS bakes a "
                   "linear step or a canary 0 to 1440 minutes)", str(rollout.interval_minutes))


_CHECKS = {"lambda": check_lambda, "sagemaker": check_sagemaker, "ecs": check_ecs}


def resolve_target(spec: ModelSpec, target: str | None = None) -> str:
    """The target to build (the override, else the model's own) after checking the model can run there."""
    chosen = target or spec.target
    if chosen not in TARGETS:
        raise InfraError(f"unknown target {chosen!r}: expected one of {', '.join(TARGETS)}")
    _CHECKS[chosen](spec)
    return chosen
