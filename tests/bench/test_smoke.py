"""The benchmark's smoke mode runs end to end and prints every figure (no timing is asserted)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.compare.report import FIGURES  # noqa: E402 - the repository root must be importable first


def test_smoke_prints_every_figure_and_writes_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--smoke", "--servers", "mlfn", "--out", str(tmp_path),
         "--cache", str(tmp_path / "models")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for figure in FIGURES:
        assert f"== {figure.title} [" in out, f"missing figure: {figure.title}"
    rows = {
        "mlfn server (HTTP)": len(FIGURES),  # every figure has mlfn's HTTP row
        "mlfn Lambda handler (in-process)": 3,  # overhead, latency at c1, cold start (init)
        "bare onnxruntime": 4,  # overhead (0), latency at c1, runs/s and rows/s, init
    }
    for label, count in rows.items():
        found = [line for line in out.splitlines() if line.startswith(label)]
        assert len(found) == count, (label, found)
        assert all(re.search(r"\d", line[len(label):]) for line in found), found
    assert "== targets from issue 7 ==" in out
    assert re.search(r"load average \(1/5/15 min\) before: [\d.]+ [\d.]+ [\d.]+  after:", out)

    results = list(tmp_path.glob("results-*.json"))
    assert len(results) == 1
    data = json.loads(results[0].read_text())
    mlp = data["models"]["mlp"]
    assert set(mlp["servers"]) == {"mlfn"}
    (measured,) = mlp["servers"]["mlfn"]
    assert "error" not in measured, measured
    assert measured["c1"]["requests"] > 0 and measured["c32"]["requests"] > 0
    assert measured["c1"]["failed"] == measured["c1"]["non_2xx"] == 0
    assert measured["peak_rss_mb"] > 10
    summary = data["summary"]["mlp"]
    assert summary["bare"]["overhead_ms"] == 0.0
    assert summary["mlfn"]["cold_start_s"] > 0


def test_targets_judge_each_figure_in_its_direction() -> None:
    """The target lines: throughput is met at or above its limit, latency-like figures at or below theirs; the
    p99 check compares against the lowest alternative, and the small-model checks skip the encoder."""
    from bench.compare.report import targets

    def server(rps: float, p99: float, overhead: float, cold: float, rss: float) -> dict[str, float]:
        return {"rps_c32": rps, "p99_c32_ms": p99, "overhead_ms": overhead, "cold_start_s": cold, "peak_rss_mb": rss}

    small = {"mlfn": server(3000, 9.0, 0.1, 0.3, 90), "fastapi": server(1400, 50.0, 0.5, 0.6, 110),
             "kserve": server(1600, 8.0, 0.4, 1.0, 170)}
    lines = {line.split("  ")[0]: line for line in targets({"forest": small})}
    assert "forest: 1.88x NOT met" in lines["requests/s at c32 >= 2x the best alternative (small models)"]
    assert "forest: 1.12x NOT met" in lines["p99 at c32 no worse than any alternative's (small models)"]
    assert "forest: 0.20x met" in lines["overhead (HTTP) <= 1/3 of plain FastAPI's"]
    assert "forest: 0.82x met" in lines["peak RSS <= plain FastAPI's"]
    small["mlfn"].update(rps_c32=3300, p99_c32_ms=7.9)
    lines = {line.split("  ")[0]: line for line in targets({"forest": small})}
    assert "forest: 2.06x met" in lines["requests/s at c32 >= 2x the best alternative (small models)"]
    assert "forest: 0.99x met" in lines["p99 at c32 no worse than any alternative's (small models)"]
    encoder = {"minilm": {**small, "bare": {"rps_c32": 58.0, "rows_per_s_batch32": 57.0}}}
    text = "\n".join(targets(encoder))
    assert "p99 at c32" not in text and "2x the best alternative" not in text
    assert "minilm: 56.90x met" in text  # mlfn's 3,300 req/s over bare's best 58: judged against onnxruntime
