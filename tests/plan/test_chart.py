"""The SVG chart: Lambda lines keep their spread when another target costs far more."""

from __future__ import annotations

import re

from mlfn.cli.plan.chart import render
from mlfn.cli.plan.cost import Option


def _lambda(mb: int, usd: float) -> Option:
    return Option("lambda", f"arm64 {mb} MB", 1.0, 2.0, usd, usd, 0.0, memory_mb=mb, arch="arm64")


def test_a_target_far_above_lambda_is_named_not_drawn() -> None:
    options = [_lambda(128, 0.30), _lambda(512, 0.40), _lambda(1769, 0.90),
               Option("ecs-gpu", "g5.xlarge (4 vCPU)", 1.0, 2.0, 1.0, 735.38, 1.006),
               Option("sagemaker-serverless", "serverless 1024 MB", 1.0, 2.0, 3.5, 3.53, 0.0, memory_mb=1024)]
    svg = render(options, title="t")
    assert "ecs-gpu g5.xlarge: 735 (off the scale)" in svg
    assert "sagemaker-serverless serverless 1024 MB" in svg and "serverless 1024 MB: " not in svg
    # the cost panel's top tick is near the highest figure drawn (Serverless, $3.53), not $735
    cost_ticks = [float(t.replace(",", "")) for t in re.findall(r'text-anchor="end">([0-9.,]+)</text>', svg)[:5]]
    assert 3.53 <= cost_ticks[-1] < 10, cost_ticks
