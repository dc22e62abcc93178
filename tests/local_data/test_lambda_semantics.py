"""Lambda's semantics through the HTTPS Function URL gateway, with tiny handlers run by the real awslambdaric."""

from __future__ import annotations

import json
import ssl
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest


def test_https_call_gets_a_format_2_event_and_reuses_the_warm_sandbox(tiny, client, plane, stats):
    ep = tiny("tiny.echo")
    assert ep.url.startswith("https://127.0.0.1:")
    first = client.post(ep.url + "v1/models/iris:predict?a=1&a=2&b=", json={"x": 1},
                        headers={"cookie": "k=v; z=1", "x-multi": "one"})
    assert first.status_code == 200
    assert first.headers["x-mlfn-cold-start"] == "true"
    assert float(first.headers["x-mlfn-init-duration-ms"]) > 0
    info = first.json()
    event = info["event"]
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/v1/models/iris:predict"
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["cookies"] == ["k=v", "z=1"]
    assert "cookie" not in event["headers"] and event["headers"]["x-multi"] == "one"
    assert event["headers"]["x-forwarded-proto"] == "https" and event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert json.loads(event["body"]) == {"x": 1} and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["apiId"] == ep.url_id and ctx["stage"] == "$default" and ctx["accountId"] == "anonymous"
    assert ctx["http"]["method"] == "POST" and ctx["http"]["sourceIp"] == "127.0.0.1"
    assert ctx["requestId"] == first.headers["x-amzn-requestid"]
    assert info["function_arn"].endswith(f":function:{ep.name}:live")
    assert info["memory"] == "256"
    assert info["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert info["env"]["MLFN_MODEL_DIR"]
    assert 0 < info["remaining_ms"] <= 5000

    second = client.get(ep.url + "again")
    assert second.status_code == 200 and second.headers["x-mlfn-cold-start"] == "false"
    assert second.json()["pid"] == info["pid"]
    assert stats(ep.key)["cold_starts"] == 1

    logs = [e["message"] for e in plane.logs.read(f"/aws/lambda/{ep.name}")]
    assert any(m.startswith("START RequestId:") for m in logs)
    assert any(m.startswith("REPORT RequestId:") and "Init Duration:" in m for m in logs)


def test_host_header_routing_on_the_shared_port(tiny, client):
    ep = tiny("tiny.plain")
    host = ep.host_url.split("//", 1)[1].split(":", 1)[0]
    port = ep.host_url.rsplit(":", 1)[1].rstrip("/")
    reply = client.get(f"https://127.0.0.1:{port}/anything", headers={"host": host})
    assert reply.status_code == 200 and reply.json() == {"answer": 42}
    assert reply.headers["content-type"] == "application/json"
    unknown = client.get(f"https://127.0.0.1:{port}/", headers={"host": "nope.lambda-url.us-east-1.localhost"})
    assert unknown.status_code == 404


def test_binary_body_and_cookies_round_trip(tiny, client):
    ep = tiny("tiny.binary")
    data = bytes(range(256))
    reply = client.post(ep.url, content=data, headers={"content-type": "application/octet-stream"})
    assert reply.status_code == 200 and reply.content == data
    assert reply.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]


def test_burst_above_reserved_concurrency_gets_429s_and_no_lost_requests(tiny, client, stats):
    ep = tiny("tiny.work", reserved=2)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: client.post(ep.url, json={"seconds": 1.0}), range(8)))
    codes = sorted(r.status_code for r in replies)
    assert len(codes) == 8 and set(codes) <= {200, 429}
    assert 1 <= codes.count(200) <= 2 + 2 and codes.count(429) >= 1
    throttled = next(r for r in replies if r.status_code == 429)
    assert throttled.json() == {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User",
                                "message": "Rate Exceeded."}
    assert throttled.headers["x-amzn-errortype"] == "TooManyRequestsException"
    s = stats(ep.key)
    assert s["cold_starts"] <= 2 and s["sandboxes"] <= 2 and s["throttles"] == codes.count(429)


def test_reserved_zero_throttles_everything(tiny, client):
    ep = tiny("tiny.plain", reserved=0)
    assert client.get(ep.url).status_code == 429


def test_cold_starts_only_when_no_sandbox_is_free(tiny, client, stats):
    ep = tiny("tiny.work")
    for _ in range(4):  # one at a time: one sandbox serves them all
        assert client.post(ep.url, json={}).status_code == 200
    assert stats(ep.key)["cold_starts"] == 1
    with ThreadPoolExecutor(3) as pool:  # three at once: two more sandboxes
        replies = list(pool.map(lambda _: client.post(ep.url, json={"seconds": 0.5}), range(3)))
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert len({r.json()["pid"] for r in replies}) == 3
    assert stats(ep.key)["cold_starts"] == 3


def test_idle_sandboxes_are_reclaimed_then_cold_start_again(tiny, client, stats, wait_for):
    ep = tiny("tiny.work", idle_s=0.5)
    assert client.post(ep.url, json={}).headers["x-mlfn-cold-start"] == "true"
    assert wait_for(lambda: stats(ep.key)["sandboxes"] == 0)
    assert stats(ep.key)["reclaimed"] == 1
    assert client.post(ep.url, json={}).headers["x-mlfn-cold-start"] == "true"


def test_provisioned_concurrency_keeps_sandboxes_warm(tiny, client, stats):
    ep = tiny("tiny.work", provisioned=2, reserved=3, idle_s=0.3)
    assert stats(ep.key)["sandboxes"] == 2  # initialised before any request
    reply = client.post(ep.url, json={})
    assert reply.status_code == 200 and reply.headers["x-mlfn-cold-start"] == "false"
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: client.post(ep.url, json={"seconds": 0.1}), range(2)))
    assert stats(ep.key)["cold_starts"] == 0 and stats(ep.key)["reclaimed"] == 0


def test_timeout_recycles_the_sandbox_while_others_succeed(tiny, client, plane, stats):
    ep = tiny("tiny.work", timeout_s=1)
    first_pid = client.post(ep.url, json={}).json()["pid"]
    with ThreadPoolExecutor(4) as pool:
        slow = pool.submit(client.post, ep.url, json={"seconds": 5})
        quick = [pool.submit(client.post, ep.url, json={"seconds": 0.05}) for _ in range(3)]
        timed_out = slow.result()
        assert all(q.result().status_code == 200 for q in quick)
    assert timed_out.status_code == 502 and timed_out.text == "Internal Server Error"
    assert timed_out.headers["x-mlfn-error-type"] == "Sandbox.Timedout"
    logs = [e["message"] for e in plane.logs.read(f"/aws/lambda/{ep.name}")]
    assert any("Task timed out after 1.00 seconds" in m for m in logs)
    assert stats(ep.key)["recycled"] >= 1
    assert all(client.post(ep.url, json={}).status_code == 200 for _ in range(3))
    assert first_pid > 0


def test_crash_answers_502_and_is_replaced(tiny, client, stats):
    ep = tiny("tiny.work")
    pid = client.post(ep.url, json={}).json()["pid"]
    crashed = client.post(ep.url, json={"crash": True})
    assert crashed.status_code == 502 and crashed.headers["x-mlfn-error-type"] == "Runtime.ExitError"
    again = client.post(ep.url, json={})
    assert again.status_code == 200 and again.json()["pid"] != pid
    assert again.headers["x-mlfn-cold-start"] == "true"
    assert stats(ep.key)["recycled"] == 1


def test_function_error_and_init_error_answer_502(tiny, client):
    failing = client.get(tiny("tiny.fail").url)
    assert failing.status_code == 502 and failing.headers["x-mlfn-error-type"] == "ValueError"
    broken = client.get(tiny("broken_init.handler").url)
    assert broken.status_code == 502 and broken.headers["x-mlfn-cold-start"] == "true"


def test_request_over_6_mb_gets_413_and_response_over_6_mb_a_502(tiny, client):
    ep = tiny("tiny.plain")
    big = client.post(ep.url, content=b"x" * (6 * 1024 * 1024 + 1), headers={"content-type": "text/plain"})
    assert big.status_code == 413 and "6291456" in big.json()["Message"]
    # 5 MB of binary is over 6 MB once base64-encoded in the event
    encoded = client.post(ep.url, content=b"\x00" * (5 * 1024 * 1024), headers={"content-type": "image/png"})
    assert encoded.status_code == 413
    assert client.post(ep.url, content=b"x" * (1024 * 1024), headers={"content-type": "text/plain"}).status_code == 200
    response = client.get(tiny("tiny.big").url)  # a function error, as for Invoke (X-Amz-Function-Error)
    assert response.status_code == 502 and response.headers["x-mlfn-error-type"] == "Function.ResponseSizeTooLarge"


@pytest.mark.parametrize("mode", ["auto", "watchdog"])
def test_memory_setting_caps_the_sandbox(tmp_path, handlers_dir, mode):
    from mlfn.cli.local.data_plane import DataPlane

    plane = DataPlane(tmp_path, persist=False, memory_mode=mode)
    plane.start()
    try:
        ep = plane.register_lambda("hog", handlers_dir, handler="tiny.hog", task_root=str(handlers_dir),
                                   auth_type="NONE", memory_mb=128, timeout_s=10)
        with httpx.Client(verify=ssl.create_default_context(cafile=str(plane.ca_path)), timeout=30) as c:
            assert c.post(ep.url, json={"mb": 20}).status_code == 200
            over = c.post(ep.url, json={"mb": 400})
            assert over.status_code == 502 and over.headers["x-mlfn-error-type"] == "Runtime.OutOfMemory"
            assert c.post(ep.url, json={"mb": 20}).status_code == 200  # replaced
    finally:
        plane.stop()



def test_provisioned_and_reserved_change_in_place(tiny, plane, client, stats, wait_for):
    ep = tiny("tiny.work", idle_s=0.3)
    assert stats(ep.key)["sandboxes"] == 0
    plane.update_lambda(ep.key, provisioned=1)
    assert stats(ep.key)["sandboxes"] == 1
    assert client.post(ep.url, json={}).headers["x-mlfn-cold-start"] == "false"
    plane.update_lambda(ep.key, provisioned=0, reserved=0)
    assert wait_for(lambda: stats(ep.key)["sandboxes"] == 0)
    assert client.post(ep.url, json={}).status_code == 429
    with pytest.raises(ValueError, match="provisioned"):
        plane.update_lambda(ep.key, provisioned=2)


def test_provisioned_concurrency_follows_the_control_plane_file(tiny, plane, stats, wait_for):
    from mlfn.cli.local.emulator_state import write_json

    ep = tiny("tiny.work", reserved=2)
    entry = {"account": "123456789012", "region": "us-east-1", "function_name": ep.name, "qualifier": "live"}
    write_json(plane.state_dir / "provisioned-concurrency.json", [{**entry, "requested": 2}])
    assert wait_for(lambda: stats(ep.key)["sandboxes"] == 2)
    write_json(plane.state_dir / "provisioned-concurrency.json", [])

    def provisioned() -> int:
        return int(next(t for t in plane.status()["targets"] if t["key"] == ep.key)["settings"]["provisioned"])

    assert wait_for(lambda: provisioned() == 0)


def test_cors_preflight_is_answered_before_auth_and_responses_carry_the_headers(tiny, client, stats):
    cors = {"AllowOrigins": ["https://app.example"], "AllowMethods": ["POST"], "AllowHeaders": ["content-type"],
            "ExposeHeaders": ["x-request-id"], "MaxAge": 60}
    ep = tiny("tiny.plain", auth_type="AWS_IAM", cors=cors)
    pre = client.options(ep.url, headers={"origin": "https://app.example", "access-control-request-method": "POST"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://app.example"
    assert pre.headers["access-control-max-age"] == "60"
    assert stats(ep.key)["invocations"] == 0  # the function never saw it
    other = client.options(ep.url, headers={"origin": "https://evil.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in other.headers
    open_ep = tiny("tiny.plain", cors=cors)
    reply = client.post(open_ep.url, json={}, headers={"origin": "https://app.example"})
    assert reply.headers["access-control-allow-origin"] == "https://app.example"
    assert reply.headers["access-control-expose-headers"] == "x-request-id"


def test_a_runtime_that_cannot_start_answers_502(tiny, client):
    ep = tiny("tiny.plain", command=["/nonexistent/python", "-m", "awslambdaric", "tiny.plain"])
    reply = client.get(ep.url)
    assert reply.status_code == 502 and reply.headers["x-mlfn-error-type"] == "Runtime.InvalidEntrypoint"
