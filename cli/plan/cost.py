"""What each target costs at the measured latency: the arithmetic of `mlfn plan`, kept free of I/O.

Lambda (aws.amazon.com/lambda/pricing): requests plus GB-seconds of billed duration, duration rounded up to
the nearest 1 ms; the INIT phase is billed like the invoke phase for every function since August 1, 2025 ("AWS
Lambda standardizes billing for INIT Phase"; container images were billed for it before), so a fraction
`cold_rate` of requests also pays the init time (AWS: cold starts "typically occur in under 1% of invocations",
our default). Provisioned concurrency: GB-seconds provisioned around the clock plus its own duration rate.
The free tier (1M requests, 400,000 GB-s a month) is per account, so plans leave it out unless asked.

Instances (SageMaker real-time, ECS on EC2 GPU): per hour, a month being `HOURS_PER_MONTH`; throughput per
instance = vCPUs x requests a second one vCPU served here (one worker per vCPU, estimated); enough instances
for the traffic, and idle cost per hour with (0) and without (one instance) scale to zero.

SageMaker Serverless Inference: the memory size chosen (1,024 to 6,144 MB in 1 GB steps, CPU only) times the
duration, billed by the millisecond, plus the data processed in and out per GB ("Deploy models with Amazon
SageMaker Serverless Inference"; rates per size from AWS's sample `sagemaker-serverless-inference-benchmarking`,
whose per-size rates are linear in GB). SageMaker gives compute in proportion to memory without saying the
ratio, so its latency is Lambda's at the same memory (estimated, and said so).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from .measure import Measurement, SizeResult
from .prices import Price, PriceBook

HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
MB_PER_GB = 1024  # Lambda's GB-second: memory in MB / 1024 (AWS example: 512MB/1024)
ARCHES = ("x86_64", "arm64")
INIT_LIMIT_MS = 10_000  # on-demand init phase limit ("Understanding the Lambda execution environment lifecycle")
SERVERLESS_SIZES_MB = (1024, 2048, 3072, 4096, 5120, 6144)  # SageMaker Serverless Inference memory sizes
BYTES_PER_GB = 1024 ** 3  # data processed: AWS's sample divides by 1024**3
HTTP_API_METER_BYTES = 512 * 1024  # HTTP APIs are metered in 512 KB increments
# the HTTPS front mlfn puts before each target (infra/fronts.py); Lambda has its own Function URL at no charge
FRONTS = {"sagemaker": "apigateway.rest.request", "sagemaker-serverless": "apigateway.rest.request",
          "ecs-gpu": "apigateway.http.request"}


def billed_ms(duration_ms: float) -> int:
    """Lambda bills duration rounded up to the nearest 1 ms."""
    return max(1, math.ceil(duration_ms))


def lambda_monthly(requests: float, duration_ms: float, memory_mb: int, request_usd: float, gb_second_usd: float,
                   *, free_requests: float = 0, free_gb_seconds: float = 0) -> float:
    """A month of on-demand Lambda: requests plus GB-seconds, each past its free tier."""
    gb_seconds = requests * billed_ms(duration_ms) / 1000 * memory_mb / MB_PER_GB
    return (max(0.0, requests - free_requests) * request_usd
            + max(0.0, gb_seconds - free_gb_seconds) * gb_second_usd)


def lambda_request_usd(duration_ms: float, memory_mb: int, request_usd: float, gb_second_usd: float, *,
                       init_ms: float = 0.0, cold_rate: float = 0.0) -> float:
    """One request on average: its price, its billed duration and its share of billed cold starts."""
    gb = memory_mb / MB_PER_GB
    warm = billed_ms(duration_ms) / 1000 * gb * gb_second_usd
    cold = cold_rate * billed_ms(init_ms) / 1000 * gb * gb_second_usd if init_ms else 0.0
    return request_usd + warm + cold


def serverless_request_usd(duration_ms: float, memory_mb: int, gb_second_usd: float, data_gb_usd: float,
                           bytes_processed: int) -> float:
    """One SageMaker Serverless Inference request: memory x duration (to the ms) plus data in and out."""
    return (billed_ms(duration_ms) / 1000 * memory_mb / MB_PER_GB * gb_second_usd
            + bytes_processed / BYTES_PER_GB * data_gb_usd)


def front_request_usd(book: PriceBook, target: str, request_bytes: int) -> float | None:
    """What the target's API Gateway front charges a request (None: its price was not found)."""
    key = FRONTS[target]
    usd = book.usd(key)
    if usd is None:
        return None
    calls = max(1, math.ceil(request_bytes / HTTP_API_METER_BYTES)) if key == "apigateway.http.request" else 1
    return usd * calls


def provisioned_monthly(concurrency: int, memory_mb: int, hours: float, provisioned_usd: float) -> float:
    """Provisioned concurrency alone: GB-seconds kept ready for `hours`, busy or not."""
    return concurrency * memory_mb / MB_PER_GB * hours * 3600 * provisioned_usd


def instances_needed(rps: float, per_instance_rps: float) -> int:
    return max(1, math.ceil(rps / per_instance_rps)) if per_instance_rps > 0 else 1


@dataclass
class Option:
    """One configuration of one target, priced (cost fields None: a price it needs was not found)."""

    target: str  # "lambda", "lambda+pc", "sagemaker", "sagemaker-serverless", "ecs-gpu"
    config: str
    p50_ms: float | None
    p99_ms: float | None
    per_million_usd: float | None
    monthly_usd: float | None
    idle_per_hour_usd: float | None  # with at least one instance (or provisioned environment) kept
    fits: bool = True
    memory_mb: int | None = None
    arch: str | None = None
    note: str = ""
    chosen: bool = False
    idle_at_zero_usd: float | None = None  # idle cost per hour when it scales to zero (None: it cannot)

    @property
    def priced(self) -> bool:
        return self.monthly_usd is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Traffic:
    requests_per_month: float
    cold_rate: float = 0.01
    provisioned: int = 0

    @property
    def rps(self) -> float:
        return self.requests_per_month / SECONDS_PER_MONTH


def _lambda_options(m: Measurement, book: PriceBook, traffic: Traffic) -> list[Option]:
    options: list[Option] = []
    request = book.usd("lambda.request")
    for arch in ARCHES:
        rate = book.usd(f"lambda.{arch}.gb_second")
        for size in m.sizes:
            note = _size_note(size)
            # a gpu = true model cannot target Lambda (the spec refuses it): shown, never chosen
            s = replace(size, fits=False) if m.gpu else size
            note = "; ".join(x for x in ("gpu = true: Lambda has no GPUs" if m.gpu else "", note) if x)
            init_ms = m.init_ms_at(s.memory_mb)
            if init_ms > INIT_LIMIT_MS:
                note = "; ".join(x for x in (note, f"init {init_ms / 1000:.1f} s (estimated) is past Lambda's 10 s "
                                                   "init phase: the first invoke retries it") if x)
            if request is None or rate is None:
                options.append(Option("lambda", f"{arch} {s.memory_mb} MB", s.p50_ms, s.p99_ms, None, None, 0.0,
                                      s.fits, s.memory_mb, arch, "unpriced: " + _missing(book, "lambda.request",
                                                                                        f"lambda.{arch}.gb_second")))
                continue
            per_request = lambda_request_usd(s.mean_ms, s.memory_mb, request, rate, init_ms=init_ms,
                                             cold_rate=traffic.cold_rate)
            options.append(Option("lambda", f"{arch} {s.memory_mb} MB", s.p50_ms, s.p99_ms, per_request * 1e6,
                                   per_request * traffic.requests_per_month, 0.0, s.fits, s.memory_mb, arch, note,
                                   idle_at_zero_usd=0.0))
            if traffic.provisioned:
                options.append(_provisioned(s, arch, book, traffic))
    return options


def _provisioned(s: SizeResult, arch: str, book: PriceBook, traffic: Traffic) -> Option:
    ready = book.usd(f"lambda.{arch}.provisioned_gb_second")
    duration = book.usd(f"lambda.{arch}.provisioned_duration_gb_second")
    request = book.usd("lambda.request")
    config = f"{arch} {s.memory_mb} MB, provisioned concurrency {traffic.provisioned}"
    if ready is None or duration is None or request is None:
        missing = _missing(book, f"lambda.{arch}.provisioned_gb_second",
                           f"lambda.{arch}.provisioned_duration_gb_second")
        return Option("lambda+pc", config, s.p50_ms, s.p99_ms, None, None, None, s.fits, s.memory_mb, arch,
                      f"unpriced: {missing}")
    per_request = lambda_request_usd(s.mean_ms, s.memory_mb, request, duration)  # no cold starts
    fixed = provisioned_monthly(traffic.provisioned, s.memory_mb, HOURS_PER_MONTH, ready)
    idle = fixed / HOURS_PER_MONTH
    return Option("lambda+pc", config, s.p50_ms, s.p99_ms, per_request * 1e6,
                  fixed + per_request * traffic.requests_per_month, idle, s.fits, s.memory_mb, arch,
                  "no cold starts within the provisioned concurrency")


def _one_vcpu(m: Measurement) -> SizeResult | None:
    """The measurement at one vCPU (1,769 MB), or the nearest size to it."""
    if not m.sizes:
        return None
    return min(m.sizes, key=lambda s: abs(s.applied_vcpus - 1.0))


def _instance_option(target: str, row: Price, m: Measurement, book: PriceBook, traffic: Traffic,
                     base: SizeResult, estimated: str) -> Option:
    per_instance_rps = (row.vcpus or 1) * 1000 / base.mean_ms if base.mean_ms > 0 else 0.0
    # one worker per vCPU, each holding the model
    fits = (row.memory_gib or 0) * 1024 >= m.peak_rss_mb * (row.vcpus or 1)
    config = f"{row.key.split('.', 1)[1]} ({row.vcpus} vCPU, {row.memory_gib:g} GiB{', ' + row.gpu if row.gpu else ''})"
    note = f"{estimated}; {per_instance_rps:,.0f} req/s per instance"
    if row.usd is None:
        return Option(target, config, base.p50_ms, base.p99_ms, None, None, None, fits, None, row.arch,
                      f"unpriced: {row.source}")
    front = front_request_usd(book, target, m.request_bytes)
    if front is None:
        return Option(target, config, base.p50_ms, base.p99_ms, None, None, row.usd, fits, None, row.arch,
                      f"unpriced: {_missing(book, FRONTS[target])}", idle_at_zero_usd=0.0)
    n = instances_needed(traffic.rps, per_instance_rps)
    per_million = (row.usd / (per_instance_rps * 3600) + front) * 1e6 if per_instance_rps else None
    monthly = n * row.usd * HOURS_PER_MONTH + front * traffic.requests_per_month
    return Option(target, config, base.p50_ms, base.p99_ms, per_million, monthly, row.usd, fits, None, row.arch,
                  f"{note}; {n} instance(s) for {traffic.rps:.2f} req/s; API Gateway front ${front * 1e6:.2f} per 1M "
                  f"requests included; idle ${row.usd:g}/h with one instance, $0/h scaled to zero",
                  idle_at_zero_usd=0.0)


def _sagemaker_options(m: Measurement, book: PriceBook, traffic: Traffic) -> list[Option]:
    base = _one_vcpu(m)
    if base is None:
        return []
    options = [_instance_option("sagemaker", row, m, book, traffic, base,
                                "latency and throughput from one vCPU here, scaled by the instance's vCPUs")
               for row in book.instances("sagemaker.ml.")]
    return options + _serverless_options(m, book, traffic)


def _serverless_size(m: Measurement, memory_mb: int) -> SizeResult | None:
    """The latency to assume at a Serverless Inference size: the Lambda measurement at that memory, else at the
    largest measured size below it (pessimistic). SageMaker gives compute in proportion to memory without saying
    the ratio; Lambda's (1,769 MB a vCPU) is the estimate."""
    below = [s for s in m.sizes if s.memory_mb <= memory_mb]
    return max(below, key=lambda s: s.memory_mb) if below else None


def _serverless_options(m: Measurement, book: PriceBook, traffic: Traffic) -> list[Option]:
    """SageMaker Serverless Inference at each memory size: CPU only, so never for a gpu = true model."""
    rate, data = book.usd("sagemaker.serverless.gb_second"), book.usd("sagemaker.serverless.data_gb")
    processed = m.request_bytes + m.response_bytes
    front = front_request_usd(book, "sagemaker-serverless", m.request_bytes)
    options = []
    for memory_mb in SERVERLESS_SIZES_MB:
        fits = memory_mb >= m.peak_rss_mb and not m.gpu
        why = "gpu = true: Serverless Inference has no GPUs" if m.gpu else (
            "" if memory_mb >= m.peak_rss_mb else "does not fit: peak memory above the size")
        config = f"serverless {memory_mb} MB"
        size = _serverless_size(m, memory_mb)
        p50, p99 = (size.p50_ms, size.p99_ms) if size else (None, None)
        if rate is None or data is None or front is None or size is None:
            missing = _missing(book, "sagemaker.serverless.gb_second", "sagemaker.serverless.data_gb",
                               FRONTS["sagemaker-serverless"]) if size else \
                f"no latency measured at or below {memory_mb} MB"
            options.append(Option("sagemaker-serverless", config, p50, p99, None, None, 0.0, fits, memory_mb,
                                  "x86_64", f"unpriced: {missing}", idle_at_zero_usd=0.0))
            continue
        per_request = serverless_request_usd(size.mean_ms, memory_mb, rate, data, processed) + front
        estimate = (f"estimated: latency at Lambda's CPU share for {size.memory_mb} MB (SageMaker gives compute in "
                    "proportion to memory but does not say the ratio); billed time taken as the model's own (AWS's "
                    f"sample adds the endpoint's OverheadLatency); {processed:,} bytes in and out a request; "
                    f"API Gateway front ${front * 1e6:.2f} per 1M included; cold starts not priced")
        options.append(Option("sagemaker-serverless", config, p50, p99, per_request * 1e6,
                              per_request * traffic.requests_per_month, 0.0, fits, memory_mb, "x86_64",
                              "; ".join(x for x in (why, estimate) if x), idle_at_zero_usd=0.0))
    return options


def _ecs_gpu_options(m: Measurement, book: PriceBook, traffic: Traffic) -> list[Option]:
    base = _one_vcpu(m)
    if base is None:
        return []
    return [_instance_option("ecs-gpu", row, m, book, traffic, base,
                             "estimated: no GPU here, so latency and throughput are the CPU figures of one vCPU "
                             "scaled by the instance's vCPUs (a GPU should do better)")
            for row in book.instances("ec2.")]


def _size_note(s: SizeResult) -> str:
    notes = []
    if s.capped:
        notes.append(f"{s.vcpus:.2f} vCPU capped at {s.applied_vcpus:g} host CPUs: latency is an upper bound")
    if not s.fits:
        notes.append("does not fit: peak memory above the size")
    if s.starved:
        notes.append(f"busy host: got {s.delivered_vcpus:.2f} of {min(s.applied_vcpus, 1.0):.2f} vCPU, "
                     "latency pessimistic")
    return "; ".join(notes)


def _missing(book: PriceBook, *keys: str) -> str:
    return ", ".join(f"{k} not found ({book.rows[k].source if k in book.rows else 'no row'})"
                     for k in keys if book.usd(k) is None)


def plan_options(m: Measurement, book: PriceBook, traffic: Traffic) -> list[Option]:
    """Every configuration of every target, priced at `traffic`."""
    return [*_lambda_options(m, book, traffic), *_sagemaker_options(m, book, traffic),
            *_ecs_gpu_options(m, book, traffic)]


def cheapest(options: Sequence[Option], p99_ms: float | None) -> Option | None:
    """The priced configuration that fits, meets the p99 SLO (when given) and costs least a month."""
    eligible = [o for o in options if o.priced and o.fits and (p99_ms is None or (o.p99_ms is not None
                                                                                and o.p99_ms <= p99_ms))]
    if not eligible:
        return None
    best = min(eligible, key=lambda o: (o.monthly_usd, o.p99_ms or 0.0))
    best.chosen = True
    return best
