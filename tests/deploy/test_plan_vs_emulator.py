"""`mlfn plan`'s predicted Lambda latency against the emulated function at the same memory size and CPU quota.

The emulator gives a sandbox its memory size's CPU share when `MLFN_LOCAL_CPU_SHARE=1`; the function's own
`REPORT ... Duration` lines (what Lambda bills) are compared with the plan's prediction at that size. The figure
printed is the note's predicted-versus-emulated error; the assertion only bounds it loosely (a busy machine).
"""

from __future__ import annotations

import json
import re
import ssl
import statistics
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlfn.cli.plan.measure import measure

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
HALF_VCPU_MB = 885
RUNS = 30


def _mlp(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from bench.models import build_mlp

    folder.mkdir()
    build_mlp(folder)
    (folder / "mlfn.toml").write_text(f'name = "plan-mlp"\n\n[server]\nintra_op_threads = 1\n\n[lambda]\n'
                                      f'memory_mb = {HALF_VCPU_MB}\n\n[auth]\ntype = "none"\n')
    rows = np.random.default_rng(1).random((256, 784)).round(3).tolist()
    (folder / "example.json").write_text(json.dumps({"instances": rows}))
    return folder


def test_predicted_latency_against_the_emulated_function(fresh_cli: Any, tmp_path: Path) -> None:
    model = _mlp(tmp_path / "mlp")
    predicted = measure(model, sizes=(HALF_VCPU_MB,), runs=RUNS, seconds_per_size=3.0).sizes[0]
    deployed = fresh_cli("deploy", str(model), "--local", "--json", env={"MLFN_LOCAL_CPU_SHARE": "1"}).json()
    context = ssl.create_default_context(cafile=deployed["ca"])
    body = (model / "example.json").read_bytes()
    for _ in range(RUNS + 1):  # the first one is the cold start
        request = urllib.request.Request(deployed["url"].rstrip("/") + "/v1/models/plan-mlp:predict", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, context=context, timeout=60) as answer:
            assert answer.status == 200
    logs = fresh_cli("logs", "plan-mlp", "--local").stdout
    durations = [float(d) for d in re.findall(r"REPORT RequestId: \S+\tDuration: ([0-9.]+) ms", logs)]
    assert len(durations) >= RUNS, logs[-2000:]
    emulated = statistics.median(durations[-RUNS:])
    error = (predicted.p50_ms - emulated) / emulated
    print(f"\n{HALF_VCPU_MB} MB ({predicted.vcpus:.2f} vCPU): predicted p50 {predicted.p50_ms:.1f} ms, emulated "
          f"median Duration {emulated:.1f} ms, error {error:+.0%}")
    assert 0.33 < predicted.p50_ms / emulated < 3.0
