"""The control plane tells the data plane about each Lambda or SageMaker write before it answers (POST /reconcile on
the data plane's internal API), never about a read, and never holds a request longer than `change_notice.SETTINGS.
wait_s` for a data plane that does not answer. A stand-in data plane (a plain HTTP server on 127.0.0.1) records
the notices."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlfn.cli.local import change_notice
from mlfn.cli.local.change_notice import Notifier
from mlfn.cli.local.emulator_state import DATA_PLANE, publish_address, withdraw_address
from mlfn.cli.local.moto_adapter import writes

ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


class StandIn:
    """A data plane's /reconcile: records when each notice arrived, answers after `delay_s`."""

    def __init__(self) -> None:
        self.notices: list[float] = []
        self.delay_s = 0.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == "/reconcile":
                    owner.notices.append(time.monotonic())
                    time.sleep(owner.delay_s)
                body = json.dumps({"reconciled": self.path == "/reconcile"}).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def stand_in(control_dir: Path) -> Iterator[StandIn]:
    """The stand-in, announced as this control plane's data plane (withdrawn after: other tests run without one)."""
    fake = StandIn()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    publish_address(control_dir, DATA_PLANE, fake.url)
    try:
        yield fake
    finally:
        withdraw_address(control_dir, DATA_PLANE)
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def function(emulator_env: None) -> str:
    """A function with a version and alias `live` (made once, before the stand-in is announced)."""
    lam, iam = boto3.client("lambda"), boto3.client("iam")
    if any(f["FunctionName"] == "notice-test" for f in lam.list_functions()["Functions"]):
        return "notice-test"
    role = iam.create_role(RoleName="notice-test", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    lam.create_function(FunctionName="notice-test", PackageType="Image", Role=role,
                        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris:1"})
    version = lam.publish_version(FunctionName="notice-test")["Version"]
    lam.create_alias(FunctionName="notice-test", Name="live", FunctionVersion=version)
    return "notice-test"


def test_writes_are_the_lambda_and_sagemaker_actions_that_change_something() -> None:
    assert writes("awslambda", "PUT", "update_alias")
    assert writes("awslambda", "DELETE", "delete_function")
    assert writes("sagemaker", "POST", "create_endpoint")
    assert not writes("awslambda", "GET", "get_alias")
    assert not writes("awslambda", "POST", "invoke")
    assert not writes("sagemaker", "POST", "describe_endpoint")
    assert not writes("cloudwatch", "POST", "put_metric_data")  # not what the data plane serves


def test_an_alias_update_reaches_the_data_plane_before_update_alias_answers(function: str,
                                                                           stand_in: StandIn) -> None:
    lam = boto3.client("lambda")
    lam.get_alias(FunctionName=function, Name="live")
    lam.list_functions()
    assert stand_in.notices == []  # reads change nothing
    lam.update_alias(FunctionName=function, Name="live", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {}})
    answered = time.monotonic()
    assert len(stand_in.notices) == 1 and stand_in.notices[0] < answered
    lam.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=5)
    lam.update_function_configuration(FunctionName=function, MemorySize=512)
    assert len(stand_in.notices) == 3


def test_a_refused_write_is_no_notice(function: str, stand_in: StandIn) -> None:
    lam = boto3.client("lambda")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_alias(FunctionName=function, Name="live", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})  # its own version
    assert stand_in.notices == []


def test_a_data_plane_that_does_not_answer_holds_a_request_at_most_wait_s(
        function: str, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(change_notice.SETTINGS, "wait_s", 0.3)
    stand_in.delay_s = 3.0
    lam = boto3.client("lambda")
    started = time.monotonic()
    lam.update_alias(FunctionName=function, Name="live", FunctionVersion="1")
    assert time.monotonic() - started < 1.5  # 0.3 s of waiting, plus the request itself
    assert len(stand_in.notices) == 1


def test_without_a_data_plane_a_notice_returns_at_once() -> None:
    started = time.monotonic()
    assert Notifier(lambda: None).changed() is False
    assert Notifier(lambda: "http://127.0.0.1:9").changed() is False  # nothing listens on the discard port
    assert time.monotonic() - started < change_notice.SETTINGS.wait_s + 0.5


def test_changes_made_while_a_notice_is_on_its_way_share_the_next_one(stand_in: StandIn) -> None:
    stand_in.delay_s = 0.3
    notifier = Notifier(lambda: stand_in.url)
    threads = [threading.Thread(target=notifier.changed) for _ in range(8)]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=10)
    assert 1 <= len(stand_in.notices) <= 3, stand_in.notices  # not one per change
