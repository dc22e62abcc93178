"""The plan as a picture: monthly cost and p99 latency against Lambda memory size, the way power tuning draws it.

One self-contained SVG file written by hand (no plotting library): two panels sharing the memory axis, one line
per Lambda architecture, and the cheapest priced configuration of each other target as a dashed horizontal line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from .cost import Option

WIDTH, PANEL_H, MARGIN_L, MARGIN_R, MARGIN_T, GAP = 880, 230, 70, 310, 40, 60
OFF_SCALE = 5  # another target's line is drawn only up to 5x the highest Lambda figure
COLORS = {"x86_64": "#1f77b4", "arm64": "#ff7f0e", "sagemaker": "#2ca02c", "ecs-gpu": "#9467bd",
          "lambda+pc": "#8c564b", "sagemaker-serverless": "#17becf"}


def _ticks(high: float) -> list[float]:
    """Four round ticks from 0 to at least `high`."""
    if high <= 0:
        return [0.0, 1.0]
    step = 10 ** len(str(int(high / 4))) / 10 if high >= 4 else high / 4
    for factor in (1, 2, 2.5, 5, 10):
        if high / (step * factor) <= 4:
            step *= factor
            break
    return [step * i for i in range(5)]


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _panel(top: float, title: str, unit: str, sizes: Sequence[int], lambda_lines: dict[str, list[float | None]],
           others: dict[str, tuple[float, str]]) -> list[str]:
    values = [v for line in lambda_lines.values() for v in line if v is not None]
    # another target far above every Lambda figure would flatten the Lambda lines: it is named, not drawn
    limit = OFF_SCALE * max(values) if values else float("inf")
    values += [v for v, _ in others.values() if v <= limit]
    ticks = _ticks(max(values, default=1.0))
    plot_w = WIDTH - MARGIN_L - MARGIN_R

    def x(i: int) -> float:
        return MARGIN_L + (plot_w * i / max(1, len(sizes) - 1))

    def y(v: float) -> float:
        return top + PANEL_H - PANEL_H * v / ticks[-1]

    out = [f'<text x="{MARGIN_L}" y="{top - 12}" font-weight="bold">{escape(title)}</text>']
    for t in ticks:
        out.append(f'<line x1="{MARGIN_L}" x2="{MARGIN_L + plot_w}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{MARGIN_L - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    out.append(f'<text x="14" y="{top + PANEL_H / 2}" transform="rotate(-90 14 {top + PANEL_H / 2})" '
               f'text-anchor="middle">{escape(unit)}</text>')
    for i, mb in enumerate(sizes):
        out.append(f'<text x="{x(i):.1f}" y="{top + PANEL_H + 16}" text-anchor="middle">{mb}</text>')
    legend_y = top + 10
    for arch, line in lambda_lines.items():
        points = [f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(line) if v is not None]
        color = COLORS.get(arch, "#333")
        out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" stroke-width="2"/>')
        out += [f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" fill="{color}"/>' for p in points]
        out.append(f'<text x="{MARGIN_L + plot_w + 10}" y="{legend_y}" fill="{color}">Lambda {arch}</text>')
        legend_y += 16
    for target, (value, label) in others.items():
        color = COLORS.get(target, "#555")
        if value > limit:
            out.append(f'<text x="{MARGIN_L + plot_w + 10}" y="{legend_y}" fill="{color}">{escape(label)}: '
                       f'{_fmt(value)} (off the scale)</text>')
            legend_y += 16
            continue
        out.append(f'<line x1="{MARGIN_L}" x2="{MARGIN_L + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                   f'stroke="{color}" stroke-dasharray="6 4" stroke-width="1.5"/>')
        out.append(f'<text x="{MARGIN_L + plot_w + 10}" y="{legend_y}" fill="{color}">{escape(label)}</text>')
        legend_y += 16
    return out


def _best(options: Sequence[Option], target: str, key: Callable[[Option], float | None]) -> Option | None:
    priced = [o for o in options if o.target == target and o.priced and o.fits and key(o) is not None]
    return min(priced, key=lambda o: o.monthly_usd or 0.0) if priced else None


def render(options: Sequence[Option], *, title: str, chosen: Option | None = None) -> str:
    """The SVG document for a plan's options."""
    lam = [o for o in options if o.target == "lambda"]
    sizes = sorted({o.memory_mb for o in lam if o.memory_mb is not None})
    cost_lines: dict[str, list[float | None]] = {}
    p99_lines: dict[str, list[float | None]] = {}
    for arch in ("x86_64", "arm64"):
        by_size = {o.memory_mb: o for o in lam if o.arch == arch}
        if by_size:
            cost_lines[arch] = [by_size[mb].monthly_usd if mb in by_size else None for mb in sizes]
            p99_lines[arch] = [by_size[mb].p99_ms if mb in by_size else None for mb in sizes]
    cost_others: dict[str, tuple[float, str]] = {}
    p99_others: dict[str, tuple[float, str]] = {}
    for target in ("lambda+pc", "sagemaker", "sagemaker-serverless", "ecs-gpu"):
        best = _best(options, target, lambda o: o.monthly_usd)
        if best is not None and best.monthly_usd is not None:
            name = best.config.split(" (")[0]
            cost_others[target] = (best.monthly_usd, f"{target} {name}")
            if best.p99_ms is not None:
                p99_others[target] = (best.p99_ms, f"{target} {name}")
    height = MARGIN_T + 2 * PANEL_H + GAP + 70
    body = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{MARGIN_L}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
        *_panel(MARGIN_T + 20, "Monthly cost at the planned traffic", "USD / month", sizes, cost_lines,
                cost_others),
        *_panel(MARGIN_T + 20 + PANEL_H + GAP, "p99 latency (warm)", "ms", sizes, p99_lines, p99_others),
        f'<text x="{MARGIN_L}" y="{height - 14}">Lambda memory size (MB)'
        + (f" | cheapest meeting the SLO: {escape(chosen.target)} {escape(chosen.config)}" if chosen else "")
        + "</text>",
        "</svg>",
    ]
    return "\n".join(body) + "\n"
