"""The plan for a person (a table per target) and for machines (`--json`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .cost import HOURS_PER_MONTH, Option, Traffic
from .measure import Measurement
from .prices import PriceBook

TARGETS = (("lambda", "Lambda (on demand)"), ("lambda+pc", "Lambda with provisioned concurrency"),
           ("sagemaker", "SageMaker real-time"), ("sagemaker-serverless", "SageMaker Serverless Inference"),
           ("ecs-gpu", "ECS on EC2 GPU"))


def _money(value: float | None) -> str:
    if value is None:
        return "unpriced"
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def _price_caveats(book: PriceBook) -> list[str]:
    """Which prices are not from AWS's price pages, said in the output rather than passed off as AWS's."""
    words = {"aws-sample": "from an AWS sample's constants, not an AWS price page",
             "third-party": "third-party transcriptions, not found in AWS's price pages",
             "not-found": "not found in AWS's price pages (unpriced)", "unstated": "of unstated origin"}
    return [f"  {words.get(basis, basis)}: {', '.join(keys)}" for basis, keys in book.not_from_aws_pages().items()]


def _idle(o: Option) -> str:
    """Idle cost per hour with one instance kept, and when scaled to zero where the target can."""
    if o.idle_per_hour_usd is None:
        return "-"
    if o.idle_at_zero_usd is None or o.idle_at_zero_usd == o.idle_per_hour_usd:
        return _money(o.idle_per_hour_usd)
    return f"{_money(o.idle_per_hour_usd)} ({_money(o.idle_at_zero_usd)} at zero)"


def _table(options: Sequence[Option]) -> list[str]:
    header = ("", "configuration", "p50 ms", "p99 ms", "$ / 1M req", "$ / month", "idle $ / h", "note")
    rows = [("*" if o.chosen else ("-" if not o.fits else ""), o.config, _ms(o.p50_ms), _ms(o.p99_ms),
             _money(o.per_million_usd), _money(o.monthly_usd),
             _idle(o), o.note)
            for o in options]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
            for r in (header, *rows)]


def text(m: Measurement, book: PriceBook, traffic: Traffic, options: Sequence[Option], chosen: Option | None,
         p99_ms: float | None, chart_path: str | None) -> str:
    lines = [
        f"mlfn plan: {m.model} (payload {m.payload})",
        f"measured here: init {m.init_ms:,.0f} ms at 1 vCPU, peak memory {m.peak_rss_mb:.0f} MB "
        f"(smallest Lambda size that fits: {m.smallest_fit_mb} MB)",
        f"CPU share applied with: {m.how}; this host has {m.host_cpus} CPUs",
        *([f"not measured: {', '.join(m.skipped)}"] if m.skipped else []),
        f"prices: {book.origin}, dated {book.date}, region {book.region} (each row's source: --json)",
        *_price_caveats(book),
        "latency: warm, in process through mlfn's runtime (decode, model, encode; no HTTP); SageMaker and ECS "
        "figures are the one-vCPU ones",
        f"traffic: {traffic.requests_per_month:,.0f} requests a month ({traffic.rps:.2f} req/s), "
        f"{traffic.cold_rate:.0%} of Lambda requests cold (init billed); free tier left out; "
        f"a month is {HOURS_PER_MONTH} hours",
    ]
    for target, title in TARGETS:
        rows = [o for o in options if o.target == target]
        if rows:
            lines += ["", title, *_table(rows)]
    lines.append("")
    lines.append("* cheapest configuration that fits" + (f" and meets p99 <= {p99_ms:g} ms" if p99_ms else "")
                 + "; - does not fit in memory")
    slo = f"p99 <= {p99_ms:g} ms" if p99_ms else "no p99 SLO given"
    if chosen is None:
        lines.append(f"no priced configuration meets {slo}")
    else:
        lines.append(f"chosen ({slo}): {chosen.target} {chosen.config}: {_money(chosen.monthly_usd)} a month, "
                     f"p99 {_ms(chosen.p99_ms)} ms")
    if chart_path:
        lines.append(f"chart: {chart_path}")
    return "\n".join(lines)


def document(m: Measurement, book: PriceBook, traffic: Traffic, options: Sequence[Option], chosen: Option | None,
             p99_ms: float | None, chart_path: str | None) -> dict[str, Any]:
    return {
        "model": m.model, "measurement": m.to_json(), "prices": book.to_json(),
        "traffic": {"requests_per_month": traffic.requests_per_month, "rps": traffic.rps,
                    "cold_rate": traffic.cold_rate, "provisioned_concurrency": traffic.provisioned,
                    "hours_per_month": HOURS_PER_MONTH, "free_tier": False},
        "p99_slo_ms": p99_ms, "options": [o.to_json() for o in options],
        "chosen": chosen.to_json() if chosen else None, "chart": chart_path,
    }
