"""bench/batch.py's smoke mode runs end to end (emulator S3, `mlfn batch --local`, bare onnxruntime) and prints
every figure; no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_batch_bench_smoke_prints_every_figure(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench.batch", "--smoke", "--cache", str(tmp_path / "models")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) == {"mlp", "forest", "iris-200", "iris-2000"}
    for name in ("mlp", "forest"):
        assert figures[name]["mlfn_batch_rows_s"] > 0 and figures[name]["onnxruntime_rows_s"] > 0
    assert figures["iris-2000"]["peak_memory_mb"] > 0
