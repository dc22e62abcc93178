"""`mlfn plan` measures a real model under Lambda's CPU share: half a vCPU is clearly slower than one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlfn.cli.console import CliError
from mlfn.cli.plan.measure import CpuLimit, measure, payload_for

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.models import build_mlp, write_toml  # noqa: E402 - the repository root must be importable first

HALF_VCPU_MB = 885  # 885 / 1,769 MB: half a vCPU
ONE_VCPU_MB = 1769


@pytest.fixture(scope="module")
def heavy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bench's MLP 784-512-512-10 with 256 rows a request: tens of ms of one core, longer than a CFS period."""
    model_dir = tmp_path_factory.mktemp("mlp")
    build_mlp(model_dir)
    write_toml(model_dir, "mlp")
    rows = np.random.default_rng(1).random((256, 784)).round(3).tolist()
    (model_dir / "example.json").write_text(json.dumps({"instances": rows}))
    return model_dir


def test_half_a_vcpu_is_clearly_slower_than_one(heavy_model: Path) -> None:
    m = measure(heavy_model, sizes=(HALF_VCPU_MB, ONE_VCPU_MB), runs=40, seconds_per_size=2.0)
    half, one = m.sizes
    assert (half.memory_mb, one.memory_mb) == (HALF_VCPU_MB, ONE_VCPU_MB)
    assert half.vcpus == pytest.approx(0.5, abs=0.01) and one.vcpus == 1.0
    assert m.method in ("cgroup2", "cgroup1", "scaled") and m.how
    # CPU-bound: half the CPU should take about twice as long; 1.4x leaves room for a loaded machine
    assert half.p50_ms > 1.4 * one.p50_ms, (half, one, m.how)
    assert m.init_ms > 0 and m.peak_rss_mb > 20


def test_scaled_fallback_says_so_and_scales_below_one_vcpu(heavy_model: Path) -> None:
    limit = CpuLimit.create("unused", prefer="scaled")
    assert limit.method == "scaled" and "sched_setaffinity" in limit.described
    assert limit.scale(0.25) == 4.0 and limit.scale(2.0) == 1.0
    m = measure(heavy_model, sizes=(HALF_VCPU_MB, ONE_VCPU_MB), runs=20, seconds_per_size=1.0, prefer="scaled")
    half, one = m.sizes
    assert m.method == "scaled" and half.p50_ms > 1.4 * one.p50_ms


def test_measuring_is_bounded_in_time(heavy_model: Path) -> None:
    m = measure(heavy_model, sizes=(HALF_VCPU_MB, ONE_VCPU_MB), budget_s=0)
    assert m.sizes == [] and all("time bound" in why for why in m.skipped) and len(m.skipped) == 2


def test_payload_is_the_example_or_a_named_file(tmp_path: Path, functions_dir: Path) -> None:
    assert payload_for(functions_dir / "iris", None) == (functions_dir / "iris" / "example.json", "application/json")
    path, kind = payload_for(functions_dir / "digits", None)
    assert path.parent.name == "examples" and kind == "image/png"
    with pytest.raises(CliError, match=r"no example\.json or examples/ file"):
        payload_for(tmp_path, None)
    with pytest.raises(CliError, match=r"--payload nope\.json: no such file"):
        payload_for(tmp_path, "nope.json")


def test_a_workers_peak_memory_is_its_own_not_its_parents() -> None:
    """Linux keeps ru_maxrss across exec: a worker started by a large process (late in a long test run) reported
    that process's peak, and every Lambda size below it was skipped as "below the model's peak memory"."""
    parent = bytearray(600 * 1024 * 1024)
    parent[:: 4096] = b"\x01" * len(parent[:: 4096])  # touch every page: 600 MB resident in this process
    code = "from mlfn.cli.plan.worker import _peak_rss_mb; print(_peak_rss_mb())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert float(child.stdout) < 300, child.stdout
    del parent
