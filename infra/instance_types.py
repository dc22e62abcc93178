"""The instance types mlfn knows, with the resources a placement check needs.

SageMaker types carry the `ml.` prefix; EC2 types (the ECS capacity provider) do not. A type missing here is
refused with the list of known families, because a typo would otherwise surface only as a failed deploy minutes in.
Figures are from the AWS instance-type pages (vCPUs, memory in GiB, NVIDIA GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_gib: float
    gpus: int = 0

    @property
    def memory_mib(self) -> int:
        return int(self.memory_gib * 1024)

    @property
    def family(self) -> str:
        return self.name.removeprefix("ml.").split(".")[0]


# size -> (vCPUs, GiB) for the general, compute and memory families, which share a size ladder.
_M = {"large": (2, 8), "xlarge": (4, 16), "2xlarge": (8, 32), "4xlarge": (16, 64), "8xlarge": (32, 128),
      "12xlarge": (48, 192), "16xlarge": (64, 256), "24xlarge": (96, 384)}
_C5 = {"large": (2, 4), "xlarge": (4, 8), "2xlarge": (8, 16), "4xlarge": (16, 32), "9xlarge": (36, 72),
       "18xlarge": (72, 144)}
_C6 = {"large": (2, 4), "xlarge": (4, 8), "2xlarge": (8, 16), "4xlarge": (16, 32), "8xlarge": (32, 64),
       "12xlarge": (48, 96), "16xlarge": (64, 128), "24xlarge": (96, 192)}
_R = {size: (cpu, gib * 2) for size, (cpu, gib) in _M.items()}

# NVIDIA GPU families: size -> (vCPUs, GiB, GPUs).
_G4DN = {"xlarge": (4, 16, 1), "2xlarge": (8, 32, 1), "4xlarge": (16, 64, 1), "8xlarge": (32, 128, 1),
         "12xlarge": (48, 192, 4), "16xlarge": (64, 256, 1)}
_G5 = {**_G4DN, "24xlarge": (96, 384, 4), "48xlarge": (192, 768, 8)}
_G6E = {"xlarge": (4, 32, 1), "2xlarge": (8, 64, 1), "4xlarge": (16, 128, 1), "8xlarge": (32, 256, 1),
        "12xlarge": (48, 384, 4), "16xlarge": (64, 512, 1), "24xlarge": (96, 768, 4), "48xlarge": (192, 1536, 8)}
_P3 = {"2xlarge": (8, 61, 1), "8xlarge": (32, 244, 4), "16xlarge": (64, 488, 8)}
_P4 = {"24xlarge": (96, 1152, 8)}
_P5 = {"48xlarge": (192, 2048, 8)}

_CPU_FAMILIES = {"m5": _M, "m6i": _M, "m7i": _M, "c5": _C5, "c6i": _C6, "c7i": _C6, "r5": _R, "r6i": _R, "r7i": _R}
_GPU_FAMILIES = {"g4dn": _G4DN, "g5": _G5, "g6": _G5, "g6e": _G6E, "p3": _P3, "p4d": _P4, "p4de": _P4, "p5": _P5}


def _table(prefix: str, include_cpu: bool) -> dict[str, InstanceType]:
    table: dict[str, InstanceType] = {}
    for family, sizes in _GPU_FAMILIES.items():
        for size, (cpu, gib, gpus) in sizes.items():
            name = f"{prefix}{family}.{size}"
            table[name] = InstanceType(name, cpu, gib, gpus)
    if include_cpu:
        for family, cpu_sizes in _CPU_FAMILIES.items():
            for size, (cpu, gib) in cpu_sizes.items():
                name = f"{prefix}{family}.{size}"
                table[name] = InstanceType(name, cpu, gib)
    return table


SAGEMAKER_TYPES = _table("ml.", include_cpu=True)
# The ECS target exists for GPU models: its capacity provider uses the ECS GPU-optimized AMI.
ECS_GPU_TYPES = _table("", include_cpu=False)
# Types above that CreateTransformJob's `TransformResources.InstanceType` does not take: its valid values (the
# `TransformInstanceType` enum, SageMaker API Reference "TransformResources"; botocore 1.44.8's model) list no
# ml.c5.large, ml.m5.8xlarge/16xlarge, ml.r5, ml.p4d, ml.p4de or ml.p5; a job on one fails CreateTransformJob.
_NOT_FOR_TRANSFORM = frozenset({
    "ml.c5.large", "ml.m5.8xlarge", "ml.m5.16xlarge", "ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.p5.48xlarge",
    *(f"ml.r5.{size}" for size in _R)})
TRANSFORM_TYPES = {name: t for name, t in SAGEMAKER_TYPES.items() if name not in _NOT_FOR_TRANSFORM}


def families(table: dict[str, InstanceType]) -> str:
    """`ml.g4dn.*, ml.g5.*, ..., ml.m5.*, ...` for error messages."""
    seen = dict.fromkeys(name.rsplit(".", 1)[0] + ".*" for name in table)  # GPU families first
    return ", ".join(seen)
