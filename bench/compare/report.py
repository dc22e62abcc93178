"""Summaries of the raw rounds and the printed tables: one per figure, each server's value per model and mlfn's
ratio against each alternative, with the issue's targets marked met or not."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ALTERNATIVES = ("fastapi", "kserve", "bentoml")
COMPUTE_BOUND = ("minilm",)  # judged against onnxruntime's best batched rate, not against the alternatives
LABELS = {"mlfn": "mlfn server (HTTP)", "mlfn-lambda": "mlfn Lambda handler (in-process)",
          "fastapi": "plain FastAPI + uvicorn", "kserve": "KServe model server",
          "bentoml": "BentoML (adaptive batching)",
          "bare": "bare onnxruntime"}


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    unit: str
    higher_is_better: bool


FIGURES = (
    Figure("overhead_ms", "per-request overhead over session.run at concurrency 1 (p50 minus bare run)", "ms", False),
    Figure("c1_p50_ms", "latency at concurrency 1, p50", "ms", False),
    Figure("rps_c32", "requests/s at concurrency 32", "req/s", True),
    Figure("p99_c32_ms", "p99 latency at concurrency 32", "ms", False),
    Figure("cold_start_s", "cold start, process spawn to first 200 (median)", "s", False),
    Figure("peak_rss_mb", "peak RSS of the server's processes", "MB", False),
)


def _median(values: list[float]) -> float:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def summarise(model: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per server label: each figure's value for one model (medians over rounds; peak RSS: the largest)."""
    inproc = model.get("inprocess", {})
    init = model.get("init", {})
    bare_run = inproc.get("bare_run_p50_ms", math.nan)
    out: dict[str, dict[str, float]] = {}
    for label, rounds in model.get("servers", {}).items():
        ok = [r for r in rounds if "error" not in r]
        if not ok:
            continue
        c1 = _median([r["c1"]["p50_ms"] for r in ok])
        out[label] = {
            "c1_p50_ms": c1, "overhead_ms": c1 - bare_run,
            "rps_c32": _median([r["c32"]["requests_per_s"] for r in ok]),
            "p50_c32_ms": _median([r["c32"]["p50_ms"] for r in ok]),
            "p99_c32_ms": _median([r["c32"]["p99_ms"] for r in ok]),
            "cold_start_s": _median([s for r in ok for s in r["cold_starts_s"]]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
            "failed_requests": sum(r["c1"]["failed"] + r["c1"]["non_2xx"] + r["c32"]["failed"] + r["c32"]["non_2xx"]
                                   for r in ok),
        }
    if inproc:
        out["mlfn-lambda"] = {"overhead_ms": inproc["lambda_overhead_ms"], "c1_p50_ms": inproc["lambda_p50_ms"],
                              "cold_start_s": _median(init.get("lambda_init_s", []))}
        out["bare"] = {"overhead_ms": 0.0, "c1_p50_ms": bare_run, "rps_c32": inproc["bare_runs_per_s_batch1"],
                       "rows_per_s_batch32": inproc["bare_rows_per_s_batch32"],
                       "cold_start_s": _median(init.get("bare_import_session_s", []))}
    return out


def _fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "req/s":
        return f"{value:,.0f}"
    if unit == "MB":
        return f"{value:.0f}"
    if unit == "s":
        return f"{value:.2f}"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def tables(summaries: dict[str, dict[str, dict[str, float]]]) -> str:
    """Every figure as a table (rows: servers, columns: models) followed by mlfn's ratios."""
    models = list(summaries)
    lines: list[str] = []
    width = 34
    col = 20
    for figure in FIGURES:
        better = "higher" if figure.higher_is_better else "lower"
        lines += ["", f"== {figure.title} [{figure.unit}, {better} is better] ==",
                  f"{'':{width}}" + "".join(f"{m:>{col}}" for m in models)]
        rows = ["mlfn", "mlfn-lambda", *ALTERNATIVES, "bare"]
        for row in rows:
            cells = [summaries[m].get(row, {}).get(figure.key) for m in models]
            if all(c is None for c in cells):
                continue
            if row == "bare" and figure.key == "rps_c32":
                cells_text = [f"{_fmt(c, figure.unit)} | "
                              f"{_fmt(summaries[m]['bare'].get('rows_per_s_batch32'), 'req/s')}"
                              for c, m in zip(cells, models, strict=True)]
                lines.append(f"{'bare onnxruntime (runs/s b1 | rows/s b32)':{width}}"
                             + "".join(f"{t:>{col}}" for t in cells_text))
                continue
            lines.append(f"{LABELS[row]:{width}}" + "".join(f"{_fmt(c, figure.unit):>{col}}" for c in cells))
        for alt in ALTERNATIVES:
            ratios = [_ratio(summaries[m], "mlfn", alt, figure.key) for m in models]
            if all(math.isnan(r) for r in ratios):
                continue
            lines.append(f"{'ratio mlfn / ' + alt:{width}}" + "".join(f"{_ratio_text(r):>{col}}" for r in ratios))
    failures = [f"{m}/{label}: {v['failed_requests']}" for m, summary in summaries.items()
                for label, v in summary.items() if v.get("failed_requests")]
    if failures:
        lines += ["", "failed or non-2xx responses (not counted in requests/s): " + ", ".join(failures)]
    lines += ["", "== targets from issue 7 ==", *targets(summaries)]
    return "\n".join(lines)


def _ratio(summary: dict[str, dict[str, float]], a: str, b: str, key: str) -> float:
    x, y = summary.get(a, {}).get(key), summary.get(b, {}).get(key)
    if x is None or y is None or math.isnan(x) or math.isnan(y) or y <= 0 or x < 0:
        return math.nan  # a negative overhead is noise (the bare run measured slower than a served one)
    return x / y


def _ratio_text(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def targets(summaries: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Each target of the issue, checked per model where the figures exist."""
    checks: list[tuple[str, Callable[[dict[str, dict[str, float]]], tuple[float, float] | None]]] = [
        ("overhead (HTTP) <= 1/3 of plain FastAPI's", lambda s: _pair(s, "mlfn", "fastapi", "overhead_ms", 1 / 3)),
        ("overhead (Lambda in-process) <= 1/3 of plain FastAPI's",
         lambda s: _pair(s, "mlfn-lambda", "fastapi", "overhead_ms", 1 / 3)),
        ("requests/s at c32 >= 2x the best alternative (small models)", _throughput),
        ("p99 at c32 no worse than any alternative's (small models)", _tail),
        ("requests/s at c32 close to bare best batched rate (encoder)", _batched),
        ("cold start < plain FastAPI's", lambda s: _pair(s, "mlfn", "fastapi", "cold_start_s", 1.0)),
        ("cold start < 1/3 of BentoML's", lambda s: _pair(s, "mlfn", "bentoml", "cold_start_s", 1 / 3)),
        ("Lambda init <= 1.3x bare import + session", lambda s: _pair(s, "mlfn-lambda", "bare", "cold_start_s", 1.3)),
        ("peak RSS <= plain FastAPI's", lambda s: _pair(s, "mlfn", "fastapi", "peak_rss_mb", 1.0)),
    ]
    lines = []
    for text, check in checks:
        parts = []
        for model, summary in summaries.items():
            if (check in SMALL_ONLY and model in COMPUTE_BOUND) or (check is _batched and model not in COMPUTE_BOUND):
                continue
            result = check(summary)
            if result is None:
                parts.append(f"{model}: n/a")
                continue
            ratio, limit = result
            verdict = "met" if (ratio >= limit if check in HIGHER_IS_BETTER else ratio <= limit) else "NOT met"
            parts.append(f"{model}: {ratio:.2f}x {verdict}")
        if parts:
            lines.append(f"{text:62} " + "; ".join(parts))
    return lines


def _pair(summary: dict[str, dict[str, float]], a: str, b: str, key: str, limit: float) -> tuple[float, float] | None:
    ratio = _ratio(summary, a, b, key)
    return None if math.isnan(ratio) else (ratio, limit)


def _throughput(summary: dict[str, dict[str, float]]) -> tuple[float, float] | None:
    best = max((summary[a]["rps_c32"] for a in ALTERNATIVES if a in summary), default=math.nan)
    mlfn = summary.get("mlfn", {}).get("rps_c32", math.nan)
    if math.isnan(best) or math.isnan(mlfn):
        return None
    return mlfn / best, 2.0


def _tail(summary: dict[str, dict[str, float]]) -> tuple[float, float] | None:
    """mlfn's p99 at concurrency 32 over the lowest alternative's (at most 1: no worse than any of them)."""
    best = min((summary[a]["p99_c32_ms"] for a in ALTERNATIVES if a in summary), default=math.nan)
    mlfn = summary.get("mlfn", {}).get("p99_c32_ms", math.nan)
    if math.isnan(best) or math.isnan(mlfn) or best <= 0:
        return None
    return mlfn / best, 1.0


def _batched(summary: dict[str, dict[str, float]]) -> tuple[float, float] | None:
    """mlfn's requests/s over bare onnxruntime's best rate (batch 1 runs/s or batch 32 rows/s); 0.8 counts as close."""
    bare = summary.get("bare", {})
    best = max(bare.get("rps_c32", math.nan), bare.get("rows_per_s_batch32", math.nan))
    mlfn = summary.get("mlfn", {}).get("rps_c32", math.nan)
    if math.isnan(best) or math.isnan(mlfn):
        return None
    return mlfn / best, 0.8


SMALL_ONLY = (_throughput, _tail)  # judged on the small models only
HIGHER_IS_BETTER = (_throughput, _batched)  # a ratio at or above the limit meets these; below, the others
