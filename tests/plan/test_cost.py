"""`mlfn plan`'s arithmetic against AWS's published worked examples, and the choice of the cheapest config."""

from __future__ import annotations

import pytest

from mlfn.cli.plan.cost import (
    Traffic,
    billed_ms,
    cheapest,
    front_request_usd,
    instances_needed,
    lambda_monthly,
    lambda_request_usd,
    plan_options,
    provisioned_monthly,
    serverless_request_usd,
)
from mlfn.cli.plan.measure import Measurement, SizeResult
from mlfn.cli.plan.prices import snapshot

# aws.amazon.com/lambda/pricing, "All examples below are based on price in US East (N. Virginia)":
# the compute price $0.00001667 per GB-s, $0.20 per 1M requests, free tier 1M requests and 400,000 GB-s.
EXAMPLE_GB_S = 0.00001667
EXAMPLE_REQUEST = 0.20 / 1e6


def test_lambda_pricing_page_example_1() -> None:
    """512MB, 3 million executions, 1 second each: $18.34 compute + $0.40 requests = $18.74 a month."""
    total = lambda_monthly(3e6, 1000, 512, EXAMPLE_REQUEST, EXAMPLE_GB_S, free_requests=1e6, free_gb_seconds=4e5)
    compute = lambda_monthly(3e6, 1000, 512, 0.0, EXAMPLE_GB_S, free_gb_seconds=4e5)
    assert round(compute, 2) == 18.34
    assert round(total - compute, 2) == 0.40
    assert round(total, 2) == 18.74


def test_lambda_pricing_page_example_2() -> None:
    """128MB, 30 million executions, 200ms each: 750,000 GB-s less 400,000 free = $5.83; 29M requests = $5.80."""
    compute = lambda_monthly(30e6, 200, 128, 0.0, EXAMPLE_GB_S, free_gb_seconds=4e5)
    requests = lambda_monthly(30e6, 200, 128, EXAMPLE_REQUEST, 0.0, free_requests=1e6)
    assert round(compute, 2) == 5.83 and round(requests, 2) == 5.80
    assert round(compute + requests, 2) == 11.63


def test_duration_is_billed_to_the_ms_rounded_up_and_init_is_billed() -> None:
    assert billed_ms(0.02) == 1 and billed_ms(13.0) == 13 and billed_ms(13.01) == 14
    warm = lambda_request_usd(13.01, 1024, 2e-7, 1.66667e-5)
    assert warm == pytest.approx(2e-7 + 0.014 * 1.0 * 1.66667e-5)
    # 1% of requests are cold and pay 250 ms of billed init (August 2025: INIT billed for every function)
    cold = lambda_request_usd(13.01, 1024, 2e-7, 1.66667e-5, init_ms=249.2, cold_rate=0.01)
    assert cold - warm == pytest.approx(0.01 * 0.250 * 1.66667e-5)


def test_provisioned_concurrency_is_paid_around_the_clock() -> None:
    # 10 environments of 512 MB for 24 hours at $0.0000041667 per GB-s: 432,000 GB-s, $1.80
    assert provisioned_monthly(10, 512, 24, 4.1667e-6) == pytest.approx(432_000 * 4.1667e-6)


def test_instances_cover_the_traffic() -> None:
    assert instances_needed(0.01, 100) == 1 and instances_needed(250, 100) == 3 and instances_needed(5, 0) == 1


def _measurement() -> Measurement:
    """Fixed figures: a CPU-bound model, 40 ms at one vCPU, twice that at half, same above one."""
    def size(mb: int, vcpus: float, ms: float) -> SizeResult:
        return SizeResult(mb, vcpus, min(vcpus, 2.0), 1, 50, ms, ms * 1.5, ms, min(vcpus, 1.0), vcpus > 2, mb >= 300)
    sizes = [size(256, 0.145, 276.0), size(512, 0.289, 138.0), size(1024, 0.579, 69.0), size(1769, 1.0, 40.0),
             size(3008, 1.7, 40.0)]
    return Measurement("m", "example.json", "cgroup1", "test", 2, 400.0, 300.0, sizes)


def test_cheapest_configuration_meeting_the_slo() -> None:
    book = snapshot("us-east-1")
    options = plan_options(_measurement(), book, Traffic(1_000_000, cold_rate=0.0))
    # no SLO: the cheapest fitting Lambda size; 256 MB does not fit (peak 300 MB)
    best = cheapest(options, None)
    assert best is not None and best.target == "lambda" and best.arch == "arm64"
    assert best.memory_mb in (512, 1024, 1769)  # CPU-bound: GB-s about the same from 512 MB up; cheapest wins
    # p99 <= 70 ms: 1,024 MB (p99 103.5 ms) no longer qualifies; 1,769 MB (p99 60 ms) does, 3,008 MB costs more
    options = plan_options(_measurement(), book, Traffic(1_000_000, cold_rate=0.0))
    best = cheapest(options, 70.0)
    assert best is not None and (best.target, best.arch, best.memory_mb) == ("lambda", "arm64", 1769)
    assert sum(o.chosen for o in options) == 1
    # an SLO nothing meets: no choice
    assert cheapest(plan_options(_measurement(), book, Traffic(1_000_000)), 1.0) is None


def test_unpriced_rows_are_never_chosen_and_say_why() -> None:
    options = plan_options(_measurement(), snapshot("us-east-1"), Traffic(1_000_000, provisioned=1))
    unpriced = [o for o in options if not o.priced]
    assert any(o.target == "sagemaker" for o in unpriced) and any(o.target == "ecs-gpu" for o in unpriced)
    assert all("unpriced" in o.note for o in unpriced)
    assert not any(o.chosen for o in unpriced)
    pc = [o for o in options if o.target == "lambda+pc" and o.arch == "x86_64"]
    assert pc and all(o.priced and o.idle_per_hour_usd and o.idle_per_hour_usd > 0 for o in pc)


def test_an_init_past_ten_seconds_is_flagged() -> None:
    m = _measurement()
    m.init_ms = 2000.0  # at one vCPU; about 14 s at 256 MB (0.145 vCPU), 2 s at 1,769 MB
    options = {(o.arch, o.memory_mb): o for o in plan_options(m, snapshot("us-east-1"), Traffic(1000))
               if o.target == "lambda"}
    assert "past Lambda's 10 s init phase" in options[("x86_64", 256)].note
    assert "init" not in options[("x86_64", 1769)].note


def test_a_gpu_model_is_never_planned_on_lambda() -> None:
    m = _measurement()
    m.gpu = True
    options = plan_options(m, snapshot("us-east-1"), Traffic(1_000_000))
    lam = [o for o in options if o.target == "lambda"]
    assert lam and all(not o.fits and o.note.startswith("gpu = true: Lambda has no GPUs") for o in lam)
    best = cheapest(options, None)
    assert best is not None and best.target in ("sagemaker", "ecs-gpu")


# SageMaker Serverless Inference rates per memory size, per second, as AWS's own sample prices them
# (github.com/aws-samples/sagemaker-serverless-inference-benchmarking, cost_constants.py: INFERENCE_COST is the
# per-second rate / 1000 per ms, PROCESSING_COST = 0.016 / 1024**3 per byte in and out). The pricing page
# (aws.amazon.com/sagemaker/pricing) renders its rates and examples client-side: no worked example was found there.
SAMPLE_SERVERLESS_PER_SECOND = {1024: 0.0000200, 2048: 0.0000400, 3072: 0.0000600, 4096: 0.0000800,
                                5120: 0.0001000, 6144: 0.0001200}


def test_serverless_inference_is_memory_times_milliseconds_plus_data_processed() -> None:
    for memory_mb, per_second in SAMPLE_SERVERLESS_PER_SECOND.items():
        # one GB-second rate reproduces every size's per-second rate, and a 1 ms request costs 1/1000 of it
        assert serverless_request_usd(1000, memory_mb, 0.00002, 0.016, 0) == pytest.approx(per_second)
        assert serverless_request_usd(1, memory_mb, 0.00002, 0.016, 0) == pytest.approx(per_second / 1000)
    # billed by the millisecond, rounded up: 135.2 ms is 136 ms
    assert serverless_request_usd(135.2, 2048, 0.00002, 0.0, 0) == pytest.approx(0.136 * 2 * 0.00002)
    # data processed in and out: $0.016 per GB (1024**3 bytes)
    assert serverless_request_usd(0.5, 1024, 0.0, 0.016, 1024 ** 3) == pytest.approx(0.016)
    # a month of 1M requests of 100 ms at 2 GB with 10 KB in and out: $4.00 compute + $0.149 data
    month = 1e6 * serverless_request_usd(100, 2048, 0.00002, 0.016, 10 * 1024)
    assert month == pytest.approx(4.0 + 1e6 * 10 * 1024 / 1024 ** 3 * 0.016)


def test_a_real_time_instance_is_paid_by_the_hour_whatever_the_traffic() -> None:
    """ml.c5.xlarge at $0.204 an hour (AWS's sample): 4 vCPUs x 25 req/s each at 40 ms = 100 req/s an instance."""
    book = snapshot("us-east-1")
    options = {o.config.split(" (")[0]: o for o in plan_options(_measurement(), book, Traffic(1_000_000))
               if o.target == "sagemaker"}
    c5 = options["ml.c5.xlarge"]
    # one instance covers 0.38 req/s; the REST API front costs $3.50 per 1M (AWS's API Gateway whitepaper, Table 4)
    assert c5.monthly_usd == pytest.approx(0.204 * 730 + 3.50)
    assert c5.per_million_usd == pytest.approx(0.204 / (100 * 3600) * 1e6 + 3.50)
    assert c5.idle_per_hour_usd == 0.204 and c5.idle_at_zero_usd == 0.0
    busy = {o.config.split(" (")[0]: o for o in plan_options(_measurement(), book, Traffic(250 * 2_628_000))
            if o.target == "sagemaker"}["ml.c5.xlarge"]
    assert busy.monthly_usd == pytest.approx(3 * 0.204 * 730 + 250 * 2_628_000 * 3.5e-6)  # 250 req/s: 3 instances
    assert options["ml.c7i.large"].monthly_usd is None and "unpriced" in options["ml.c7i.large"].note


def test_serverless_options_fit_memory_and_take_lambdas_share_at_that_size() -> None:
    m = _measurement()
    m.request_bytes, m.response_bytes = 300, 100
    rows = {o.memory_mb: o for o in plan_options(m, snapshot("us-east-1"), Traffic(1_000_000))
            if o.target == "sagemaker-serverless"}
    assert sorted(rows) == [1024, 2048, 3072, 4096, 5120, 6144]
    # 1,024 MB takes the 1,024 MB measurement (69 ms); 2,048 MB the largest below it (1,769 MB: 40 ms)
    assert rows[1024].p50_ms == 69.0 and rows[2048].p50_ms == 40.0 and rows[6144].p50_ms == 40.0
    assert rows[1024].per_million_usd == pytest.approx(1e6 * (0.069 * 0.00002 + 400 / 1024 ** 3 * 0.016 + 3.5e-6))
    assert all(o.idle_per_hour_usd == 0.0 and "estimated" in o.note for o in rows.values())
    m.gpu = True
    gpu = [o for o in plan_options(m, snapshot("us-east-1"), Traffic(1000)) if o.target == "sagemaker-serverless"]
    assert gpu and not any(o.fits for o in gpu) and all("no GPUs" in o.note for o in gpu)


def test_prices_not_from_aws_pages_are_named() -> None:
    caveats = snapshot("us-east-1").not_from_aws_pages()
    assert "sagemaker.serverless.gb_second" in caveats["aws-sample"]
    assert "lambda.arm64.gb_second" in caveats["third-party"]
    assert "ec2.g6.xlarge" in caveats["not-found"]
    assert not any("lambda.request" in keys or "apigateway.rest.request" in keys for keys in caveats.values())


def test_the_api_gateway_front_is_priced_per_request() -> None:
    """REST API $3.50 and HTTP API $1.00 per million (us-east-1, first tiers); HTTP APIs meter 512 KB increments."""
    book = snapshot("us-east-1")
    assert front_request_usd(book, "sagemaker", 10_000_000) == pytest.approx(3.5e-6)
    assert front_request_usd(book, "ecs-gpu", 100) == pytest.approx(1e-6)
    assert front_request_usd(book, "ecs-gpu", 512 * 1024 + 1) == pytest.approx(2e-6)
