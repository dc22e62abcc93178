"""How much CPU this process may use, and so how many intra-op threads onnxruntime should run.

The visible core count lies in both places mlfn runs: Lambda shows 2 cores to a 2 GB function that is
given about 1.16 vCPU of time, and a container limited by a CFS quota still sees every core of the host.
Oversubscribing threads on a metered CPU share makes latency worse, not better. So the share comes from
what the platform meters:

- Lambda: `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (1,769 MB buys one vCPU, 10,240 MB about 6);
- containers (SageMaker, ECS, local): the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`),
  bounded by the CPUs the process may be scheduled on (`sched_getaffinity`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

from .record import record
from .settings import Settings

MB_PER_LAMBDA_VCPU = 1769
LAMBDA_MAX_VCPUS = 6.0
CGROUP_ROOT = Path("/sys/fs/cgroup")


@record
class CpuShare:
    """A CPU share in vCPUs and where it was read from."""

    vcpus: float
    source: str  # "lambda-memory", "cgroup-quota", "affinity"

    @property
    def metered(self) -> bool:
        """CPU time is capped below the visible cores, so spinning threads burn the share."""
        return self.source != "affinity"

    @property
    def threads(self) -> int:
        """Intra-op threads for this share: the share rounded half up, at least one."""
        return max(1, math.floor(self.vcpus + 0.5))


def lambda_vcpus(memory_mb: int) -> float:
    """The vCPU share Lambda gives a function of this memory size."""
    return min(LAMBDA_MAX_VCPUS, memory_mb / MB_PER_LAMBDA_VCPU)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    """This process's cgroup v2 directory and its ancestors up to the mount root (innermost first)."""
    dirs: list[Path] = []
    text = _read(proc_cgroup) or ""
    for line in text.splitlines():
        if line.startswith("0::"):
            relative = line[3:].strip().lstrip("/")
            current = root / relative if relative else root
            while True:
                dirs.append(current)
                if current == root or root not in current.parents:
                    break
                current = current.parent
    if root not in dirs:
        dirs.append(root)
    return dirs


def _cgroup_v2_quota(root: Path, proc_cgroup: Path) -> float | None:
    """The smallest `cpu.max` quota along this process's cgroup path, in CPUs (None: unlimited)."""
    limits: list[float] = []
    for directory in _own_cgroup_dirs(root, proc_cgroup):
        text = _read(directory / "cpu.max")
        if not text:
            continue
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                quota, period = int(parts[0]), int(parts[1])
            except ValueError:
                continue
            if quota > 0 and period > 0:
                limits.append(quota / period)
    return min(limits) if limits else None


def _cgroup_v1_quota(root: Path) -> float | None:
    """The CFS quota of cgroup v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`), in CPUs (None: unlimited)."""
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        quota_text = _read(root / name / "cpu.cfs_quota_us")
        period_text = _read(root / name / "cpu.cfs_period_us")
        if quota_text is None or period_text is None:
            continue
        try:
            quota, period = int(quota_text), int(period_text)
        except ValueError:
            continue
        return quota / period if quota > 0 and period > 0 else None
    return None


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS has no sched_getaffinity
        return os.cpu_count() or 1


def cpu_share(
    environ: Mapping[str, str] | None = None,
    *,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroup: Path = Path("/proc/self/cgroup"),
    affinity: int | None = None,
) -> CpuShare:
    """The CPU share this process runs with (arguments exist so tests can point at fake files)."""
    env = os.environ if environ is None else environ
    cpus = _affinity() if affinity is None else affinity
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "").strip()
    if memory.isdigit() and int(memory) > 0:
        return CpuShare(lambda_vcpus(int(memory)), "lambda-memory")
    quota = _cgroup_v2_quota(cgroup_root, proc_cgroup)
    if quota is None:
        quota = _cgroup_v1_quota(cgroup_root)
    if quota is not None and quota < cpus:
        return CpuShare(quota, "cgroup-quota")
    return CpuShare(float(cpus), "affinity")


def intra_op_threads(settings: Settings, share: CpuShare | None = None) -> int:
    """`server.intra_op_threads` when set, else the thread count the CPU share supports."""
    if settings.server.intra_op_threads:
        return settings.server.intra_op_threads
    return (share or cpu_share()).threads
