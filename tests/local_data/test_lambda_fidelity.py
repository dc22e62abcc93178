"""Lambda behaviours checked against AWS's documentation (docs/aws-fidelity.md, "Lambda: execution environments,
concurrency and limits"), through the HTTPS Function URL gateway and the real awslambdaric."""

from __future__ import annotations

import math
import re

REPORT = re.compile(r"Duration: ([\d.]+) ms\tBilled Duration: (\d+) ms\tMemory Size: (\d+) MB\t"
                    r"Max Memory Used: (\d+) MB(?:\tInit Duration: ([\d.]+) ms)?")
RESERVED_VARIABLES = ("_HANDLER", "AWS_REGION", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
                      "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_LOG_GROUP_NAME",
                      "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
                      "TZ", "AWS_LAMBDA_INITIALIZATION_TYPE")


def test_a_string_result_is_answered_as_its_text(tiny, client):
    # AWS answers a string result "hello" as `hello`, Content-Length 5 (LocalStack's AWS-validated snapshot of
    # TestLambdaURL::test_lambda_url_invocation[string]); the guide's example shows the quotes
    reply = client.get(tiny("tiny.greeting").url)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    assert reply.content == b"Hello, world!"


def test_a_response_over_6_mb_is_a_function_error_502(tiny, client):
    reply = client.get(tiny("tiny.big").url)
    assert reply.status_code == 502 and reply.text == "Internal Server Error"
    assert reply.headers["x-mlfn-error-type"] == "Function.ResponseSizeTooLarge"


def test_billed_duration_is_rounded_up_to_the_millisecond_and_includes_init_on_a_cold_start(tiny, client, plane):
    ep = tiny("tiny.plain")
    assert client.get(ep.url).headers["x-mlfn-cold-start"] == "true"
    assert client.get(ep.url).headers["x-mlfn-cold-start"] == "false"
    reports = [REPORT.search(e["message"]) for e in plane.logs.read(f"/aws/lambda/{ep.name}")
               if e["message"].startswith("REPORT RequestId: ")]
    assert len(reports) == 2 and all(reports)
    for match in reports:
        duration, billed = float(match[1]), int(match[2])
        init = float(match[5] or 0)
        # printed values are rounded to 0.01 ms
        assert math.ceil(duration + init - 0.01) <= billed <= math.ceil(duration + init + 0.01)
        assert int(match[3]) == 256
    assert reports[0][5] is not None and reports[1][5] is None  # Init Duration on the cold start only
    assert int(reports[0][2]) > float(reports[0][1]) + 1  # the init phase is billed


def test_more_than_10x_reserved_concurrency_requests_a_second_are_throttled(tiny, client):
    ep = tiny("tiny.plain", reserved=1)  # "Throttling function URLs": at most 10 x 1 requests per second
    replies = []
    for _ in range(100):
        replies.append(client.get(ep.url))
        if replies[-1].status_code == 429:
            break
    throttled = replies[-1]
    assert throttled.status_code == 429, "100 quick requests never went over 10 a second"
    assert throttled.json() == {"Reason": "ReservedFunctionInvocationRateLimitExceeded", "Type": "User",
                                "message": "Rate Exceeded."}
    assert throttled.headers["x-amzn-errortype"] == "TooManyRequestsException"
    assert len(replies) >= 11 and all(r.status_code == 200 for r in replies[:10])


def test_the_sandbox_gets_lambdas_reserved_variables_and_no_others(tiny, client):
    info = client.get(tiny("tiny.echo", timeout_s=3).url).json()
    env = info["env"]
    missing = [name for name in RESERVED_VARIABLES if name.startswith(("AWS_LAMBDA", "_HANDLER", "LAMBDA"))
               and name not in env]
    assert not missing
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert "AWS_LAMBDA_FUNCTION_TIMEOUT" not in env  # not one of Lambda's variables


def test_a_provisioned_sandbox_may_initialise_for_longer_than_an_on_demand_one(tiny, client):
    # on demand: 10 s, then retried under the 1 s timeout (11 s here); provisioned: max(130 s, timeout)
    ep = tiny("slow_init.handler", timeout_s=1, reserved=1, provisioned=1, env={"INIT_SLEEP_S": "11.5"})
    reply = client.get(ep.url)
    assert reply.status_code == 200, reply.headers.get("x-mlfn-error-type")
    assert reply.json() == {"initialization_type": "provisioned-concurrency"}
    assert reply.headers["x-mlfn-cold-start"] == "false"


def test_the_runtime_api_hands_out_lambdas_headers_and_refuses_an_oversized_response():
    import asyncio
    import time

    import httpx

    from mlfn.cli.local.runtime_api import MAX_RESPONSE_BYTES, PREFIX, Invocation, RuntimeApi

    async def scenario() -> None:
        api = RuntimeApi()
        await api.start()
        try:
            arn = "arn:aws:lambda:us-east-1:123456789012:function:f:live"
            async with httpx.AsyncClient(base_url=f"http://{api.address}{PREFIX}", timeout=10) as runtime:
                first = Invocation(b'{"a": 1}', int(time.time() * 1000) + 3000, arn)
                api.submit(first)
                got = await runtime.get("/invocation/next")
                assert got.status_code == 200 and got.content == b'{"a": 1}' and api.ready.is_set()
                assert got.headers["lambda-runtime-aws-request-id"] == first.request_id
                assert got.headers["lambda-runtime-invoked-function-arn"] == arn
                assert 0 < int(got.headers["lambda-runtime-deadline-ms"]) - time.time() * 1000 <= 3000
                assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0",
                                    got.headers["lambda-runtime-trace-id"])
                too_big = await runtime.post(f"/invocation/{first.request_id}/response",
                                             content=b"x" * (MAX_RESPONSE_BYTES + 1))
                assert too_big.status_code == 413
                outcome = await first.outcome
                assert outcome.error_type == "Function.ResponseSizeTooLarge"
                assert "(6291556 bytes)" in outcome.body.decode()
                stale = await runtime.post(f"/invocation/{first.request_id}/response", content=b"{}")
                assert stale.status_code == 400  # that invocation is over
                second = Invocation(b"{}", int(time.time() * 1000) + 3000, arn)
                api.submit(second)
                await runtime.get("/invocation/next")
                error = await runtime.post(f"/invocation/{second.request_id}/error",
                                           content=b'{"errorMessage": "no", "errorType": "ValueError"}',
                                           headers={"Lambda-Runtime-Function-Error-Type": "ValueError"})
                assert error.status_code == 202 and (await second.outcome).error_type == "ValueError"
                assert (await runtime.get("/nothing")).status_code == 404
        finally:
            await api.stop()

    asyncio.run(scenario())


def test_an_on_demand_init_over_10_s_plus_the_timeout_is_a_timeout(tiny, client, plane):
    ep = tiny("slow_init.handler", timeout_s=1, env={"INIT_SLEEP_S": "11.5"})
    reply = client.get(ep.url)
    assert reply.status_code == 502 and reply.headers["x-mlfn-error-type"] == "Sandbox.Timedout"
    assert reply.headers["x-mlfn-cold-start"] == "true"
    logs = [e["message"] for e in plane.logs.read(f"/aws/lambda/{ep.name}")]
    assert any(m.startswith("INIT_REPORT Init Duration: ") and "\tPhase: init\tStatus: timeout" in m for m in logs)


def test_unreserved_functions_share_the_accounts_concurrency_less_what_is_reserved(tmp_path, handlers_dir, wait_for):
    import ssl
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from mlfn.cli.local.data_plane import DataPlane

    plane = DataPlane(tmp_path, persist=False, account_concurrency=3)
    plane.start()
    try:
        def register(name: str, **settings):
            return plane.register_lambda(name, handlers_dir, handler="tiny.work", task_root=str(handlers_dir),
                                         auth_type="NONE", memory_mb=256, timeout_s=10, **settings)

        first, second, reserved = register("first"), register("second"), register("reserved", reserved=1)

        def in_use(key: str) -> int:
            pool = next(t for t in plane.status()["targets"] if t["key"] == key)["pool"]
            return int(pool["busy"]) + int(pool["starting"])

        with httpx.Client(verify=ssl.create_default_context(cafile=str(plane.ca_path)), timeout=30) as client, \
                ThreadPoolExecutor(2) as pool:
            slow = [pool.submit(client.post, first.url, json={"seconds": 3}) for _ in range(2)]
            assert wait_for(lambda: in_use(first.key) == 2)  # 3 - 1 reserved = 2 unreserved, both taken
            throttled = client.post(second.url, json={})
            assert throttled.status_code == 429
            assert throttled.json()["Reason"] == "ConcurrentInvocationLimitExceeded"
            assert client.post(reserved.url, json={}).status_code == 200  # its reserved concurrency is its own
            assert all(f.result().status_code == 200 for f in slow)
            assert client.post(second.url, json={}).status_code == 200  # the account's concurrency is free again
    finally:
        plane.stop()
