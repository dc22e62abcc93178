"""`mlfn plan MODEL_DIR`: measure the model here under Lambda's CPU shares, then price every target."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..console import CliError, info, result

DEFAULT_REQUESTS_PER_MONTH = 1_000_000


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plan", help="measure the model here and price Lambda, SageMaker and ECS GPU before deploying")
    p.add_argument("model_dir", nargs="+", help="folder holding model.onnx and an optional mlfn.toml; or a folder of "
                   "them, several folders, or a glob: each model planned in turn (fleet)")
    traffic = p.add_mutually_exclusive_group()
    traffic.add_argument("--requests-per-month", type=float, metavar="N",
                         help=f"planned traffic (default: [plan] requests_per_month in mlfn.toml, else "
                              f"{DEFAULT_REQUESTS_PER_MONTH:,})")
    traffic.add_argument("--rps", type=float, metavar="R", help="planned traffic in requests a second")
    p.add_argument("--p99-ms", type=float, metavar="SLO", help="mark the cheapest configuration with p99 under this")
    p.add_argument("--payload", metavar="FILE", help="request body to measure with (default: the folder's "
                                                    "example.json, else its first examples/ file)")
    p.add_argument("--prices", metavar="FILE", help="price file in the snapshot's format (overrides the snapshot)")
    p.add_argument("--region", help="region of the prices (default: AWS_REGION, else us-east-1)")
    p.add_argument("--profile", help="AWS profile for the Price List API refresh")
    p.add_argument("--no-refresh", action="store_true",
                   help="use the shipped snapshot even when AWS credentials are present")
    p.add_argument("--cold-rate", type=float, default=0.01, metavar="F",
                   help="fraction of Lambda requests that start cold and pay init (default 0.01)")
    p.add_argument("--provisioned-concurrency", type=int, default=0, metavar="N",
                   help="also price Lambda with N provisioned environments")
    p.add_argument("--chart", metavar="FILE", help="where to write the SVG chart (default: .mlfn/plan/NAME.svg)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(handler=run)


def requests_per_month(args: argparse.Namespace, configured: float | None) -> float:
    """Traffic from --rps, --requests-per-month, mlfn.toml's [plan], or the default; refuses a negative one."""
    from ..plan.cost import SECONDS_PER_MONTH

    if args.rps is not None:
        value, name = args.rps * SECONDS_PER_MONTH, "--rps"
    elif args.requests_per_month is not None:
        value, name = args.requests_per_month, "--requests-per-month"
    else:
        value, name = configured or DEFAULT_REQUESTS_PER_MONTH, "[plan] requests_per_month"
    if value < 0:
        raise CliError(f"{name} must be 0 or more; got {value:g}")
    return value


def run(args: argparse.Namespace) -> int:
    from mlfn.runtime.spec import load_spec

    from ..plan import chart, cost, prices, report
    from ..plan.measure import measure

    if isinstance(args.model_dir, list):  # fleet hook
        from ..fleet.selection import is_selection

        if is_selection(args.model_dir):
            from ..fleet.commands import run_plan

            return run_plan(args, args.model_dir)
        args.model_dir = args.model_dir[0]
    if not 0 <= args.cold_rate <= 1:
        raise CliError(f"--cold-rate must be between 0 and 1; got {args.cold_rate:g}")
    if args.provisioned_concurrency < 0:
        raise CliError(f"--provisioned-concurrency must be 0 or more; got {args.provisioned_concurrency}")
    spec = load_spec(args.model_dir)
    traffic = cost.Traffic(requests_per_month(args, spec.settings.plan.requests_per_month or None), args.cold_rate,
                           args.provisioned_concurrency)
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    client = None if (args.no_refresh or args.prices) else prices.pricing_client(args.profile)
    book = prices.load(region, args.prices, client=client)
    m = measure(args.model_dir, payload=args.payload, progress=lambda line: info(f"  {line}"))
    options = cost.plan_options(m, book, traffic)
    chosen = cost.cheapest(options, args.p99_ms)
    chart_path = Path(args.chart) if args.chart else Path(".mlfn") / "plan" / f"{m.model}.svg"
    chart_path.parent.mkdir(parents=True, exist_ok=True)
    chart_path.write_text(chart.render(options, title=f"mlfn plan: {m.model} at "
                                                      f"{traffic.requests_per_month:,.0f} requests a month",
                                       chosen=chosen))
    result(report.document(m, book, traffic, options, chosen, args.p99_ms, str(chart_path)), args.json,
           report.text(m, book, traffic, options, chosen, args.p99_ms, str(chart_path)))
    return 0
