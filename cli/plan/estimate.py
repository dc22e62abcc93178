"""The line `mlfn deploy` prints when `mlfn.toml` sets `[plan] requests_per_month`: what the deployed
configuration should cost a month at that traffic, from a short measurement here and the shipped price snapshot
(never the network: a deploy does not wait on the Price List API)."""

from __future__ import annotations

from mlfn.runtime.cpu_share import MB_PER_LAMBDA_VCPU
from mlfn.runtime.errors import MlfnError
from mlfn.runtime.spec import ModelSpec

from ..console import CliError
from . import cost, prices
from .measure import measure

DEFAULT_REGION = "us-east-1"


def _money(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:,.2f}"


def _deployed_option(spec: ModelSpec, target: str, book: prices.PriceBook, traffic: cost.Traffic) -> cost.Option:
    s = spec.settings
    if target == "lambda":
        m = measure(spec.directory, sizes=(s.lambda_.memory_mb,), runs=100, seconds_per_size=0.5)
        options = cost.plan_options(m, book, traffic)
        return next(o for o in options if o.target == "lambda" and o.arch == s.lambda_.architecture)
    if target == "sagemaker" and s.sagemaker.serverless:
        size = s.sagemaker.serverless_memory_mb
        m = measure(spec.directory, sizes=(size,), runs=100, seconds_per_size=0.5)
        rows = cost._serverless_options(m, book, traffic)
        return next((o for o in rows if o.memory_mb == size),
                    cost.Option("sagemaker-serverless", f"serverless {size} MB", None, None, None, None, 0.0,
                                note=f"unpriced: {size} MB is not a Serverless Inference memory size"))
    key = f"sagemaker.{s.sagemaker.instance_type}" if target == "sagemaker" else f"ec2.{s.ecs.instance_type}"
    row = book.rows.get(key)
    if row is None or row.vcpus is None:
        return cost.Option(target, key.split(".", 1)[1], None, None, None, None, None,
                           note=f"unpriced: {key.split('.', 1)[1]} is not in {book.origin}")
    m = measure(spec.directory, sizes=(MB_PER_LAMBDA_VCPU,), runs=100, seconds_per_size=0.5)
    return cost._instance_option(target, row, m, book, traffic, m.sizes[0], "estimated from one vCPU here")


def monthly_line(spec: ModelSpec, target: str, region: str | None) -> str | None:
    """One line for `mlfn deploy`, or None when `[plan] requests_per_month` is not set."""
    requests = spec.settings.plan.requests_per_month
    if not requests:
        return None
    try:
        book = prices.snapshot(region or DEFAULT_REGION)
        option = _deployed_option(spec, target, book, cost.Traffic(requests))
    except (CliError, MlfnError) as exc:
        return f"estimated monthly cost at {requests:,} requests: not estimated ({exc})"
    why = f" ({option.note})" if option.monthly_usd is None and option.note else ""
    return (f"estimated monthly cost at {requests:,} requests ([plan] in mlfn.toml): "
            f"{_money(option.monthly_usd)} for {option.target} {option.config}{why}; prices {book.origin} dated "
            f"{book.date}; see `mlfn plan` for the other targets")
