"""mlfn.runtime.cpu_share: the CPU share from Lambda's memory setting and from cgroup v2/v1 files.

The cgroup files are written to a temporary folder (this machine's own cgroup cannot be set by a test).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfn.runtime.cpu_share import CpuShare, cpu_share, intra_op_threads, lambda_vcpus
from mlfn.runtime.settings import ServerSettings, Settings


def files(root: Path, **contents: str) -> Path:
    for name, text in contents.items():
        path = root / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("memory", "vcpus", "threads"),
    [("128", 128 / 1769, 1), ("1769", 1.0, 1), ("2048", 2048 / 1769, 1), ("3008", 3008 / 1769, 2),
     ("5308", 5308 / 1769, 3), ("10240", 10240 / 1769, 6)],
)
def test_lambda_share_comes_from_memory_not_cores(tmp_path, memory, vcpus, threads):
    share = cpu_share({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": memory}, cgroup_root=tmp_path, affinity=2)
    assert share == CpuShare(pytest.approx(vcpus), "lambda-memory")
    assert share.threads == threads
    assert share.metered


def test_lambda_share_tops_out_at_six():
    assert lambda_vcpus(10240) == pytest.approx(5.79, abs=0.01)
    assert lambda_vcpus(20000) == 6.0


def test_cgroup_v2_quota_along_the_process_path(tmp_path):
    root = files(tmp_path / "cg", **{"cpu.max": "max 100000", "kubepods__pod1__cpu.max": "150000 100000",
                                    "kubepods__cpu.max": "300000 100000"})
    proc = files(tmp_path, proc="0::/kubepods/pod1\n") / "proc"
    share = cpu_share({}, cgroup_root=root, proc_cgroup=proc, affinity=8)
    assert share == CpuShare(1.5, "cgroup-quota")
    assert share.threads == 2


def test_cgroup_v2_without_a_quota_uses_the_affinity(tmp_path):
    root = files(tmp_path / "cg", **{"cpu.max": "max 100000"})
    share = cpu_share({}, cgroup_root=root, proc_cgroup=tmp_path / "none", affinity=3)
    assert share == CpuShare(3.0, "affinity")
    assert not share.metered


def test_quota_above_the_affinity_is_bounded_by_it(tmp_path):
    root = files(tmp_path / "cg", **{"cpu.max": "800000 100000"})
    assert cpu_share({}, cgroup_root=root, proc_cgroup=tmp_path / "none", affinity=2) == CpuShare(2.0, "affinity")


def test_cgroup_v1_cfs_quota(tmp_path):
    root = files(tmp_path / "cg", **{"cpu,cpuacct__cpu.cfs_quota_us": "50000",
                                    "cpu,cpuacct__cpu.cfs_period_us": "100000"})
    share = cpu_share({}, cgroup_root=root, proc_cgroup=tmp_path / "none", affinity=4)
    assert share == CpuShare(0.5, "cgroup-quota")
    assert share.threads == 1
    unlimited = files(tmp_path / "cg1", **{"cpu__cpu.cfs_quota_us": "-1", "cpu__cpu.cfs_period_us": "100000"})
    assert cpu_share({}, cgroup_root=unlimited, proc_cgroup=tmp_path / "none", affinity=4).source == "affinity"


def test_garbage_files_are_ignored(tmp_path):
    root = files(tmp_path / "cg", **{"cpu.max": "lots 100000"})
    assert cpu_share({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "big"}, cgroup_root=root, proc_cgroup=tmp_path / "none",
                     affinity=2) == CpuShare(2.0, "affinity")


def test_setting_overrides_the_share():
    share = CpuShare(5.79, "lambda-memory")
    assert intra_op_threads(Settings(), share) == 6
    assert intra_op_threads(Settings(server=ServerSettings(intra_op_threads=2)), share) == 2


def test_this_machine_has_a_share():
    share = cpu_share()
    assert share.vcpus > 0 and share.threads >= 1
