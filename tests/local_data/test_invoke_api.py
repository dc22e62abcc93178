"""Lambda's Invoke API through boto3 against the control plane, run by the data plane process (moto only echoes)."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from mlfn.cli.local.control_plane import ControlPlane, client_environment
from mlfn.cli.local.data_plane import DataPlaneClient


def _error(failure: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = failure.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _served_function(state: Path, handlers: Path, name: str, **settings: Any) -> Any:
    """A function with a version and alias `live` made with boto3 (image never pushed), whose alias the data plane
    of `state` runs from the test handlers; its Lambda client."""
    iam = boto3.client("iam")
    lam = boto3.client("lambda", config=Config(retries={"max_attempts": 1}, read_timeout=60))
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]}))
    lam.create_function(FunctionName=name, PackageType="Image", Role=role["Role"]["Arn"],
                        Code={"ImageUri": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}:1"})
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=lam.publish_version(FunctionName=name)["Version"])
    DataPlaneClient(state).register_lambda(name, handlers, handler="tiny.direct", task_root=str(handlers),
                                           auth_type="NONE", memory_mb=256, timeout_s=10, **settings)
    return lam


def test_invoke_runs_the_function_with_lambdas_results_and_errors(tmp_path, handlers_dir, monkeypatch,
                                                                  start_data_plane):
    process = start_data_plane(tmp_path)
    try:
        with ControlPlane(state_dir=tmp_path) as control:
            for key, value in client_environment(control.url).items():
                monkeypatch.setenv(key, value)
            lam = _served_function(tmp_path, handlers_dir, "direct", reserved=1)

            ok = lam.invoke(FunctionName="direct", Qualifier="live", Payload=json.dumps({"x": 1}))
            assert ok["StatusCode"] == 200 and "FunctionError" not in ok and ok["ExecutedVersion"] == "1"
            assert json.loads(ok["Payload"].read()) == {"got": {"x": 1}}

            failed = lam.invoke(FunctionName="direct:live", Payload=json.dumps({"fail": True}))
            assert failed["StatusCode"] == 200 and failed["FunctionError"] == "Unhandled"
            assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"

            # as AWS answers it (LocalStack's AWS-validated snapshots): unqualified runs $LATEST; sys.exit(0)
            exited = lam.invoke(FunctionName="direct", Payload=json.dumps({"exit": True}))
            assert exited["FunctionError"] == "Unhandled" and exited["ExecutedVersion"] == "$LATEST"
            error = json.loads(exited["Payload"].read())
            assert error["errorType"] == "Runtime.ExitError"
            assert error["errorMessage"].endswith(" Error: Runtime exited without providing a reason")

            with pytest.raises(ClientError) as not_json:
                lam.invoke(FunctionName="direct", Qualifier="live", Payload=b"{not json")
            assert _error(not_json) == ("InvalidRequestContentException", 400)

            with pytest.raises(ClientError) as too_large:
                lam.invoke(FunctionName="direct", Qualifier="live", Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
            assert _error(too_large) == ("RequestTooLargeException", 413)

            slow = threading.Thread(target=lam.invoke, kwargs={"FunctionName": "direct", "Qualifier": "live",
                                                                "Payload": json.dumps({"seconds": 3})})
            slow.start()
            try:
                time.sleep(1)  # the slow call holds the only reserved sandbox
                with pytest.raises(ClientError) as throttled:
                    lam.invoke(FunctionName="direct", Qualifier="live", Payload=b"{}")
                assert _error(throttled) == ("TooManyRequestsException", 429)
                assert throttled.value.response.get("Reason") == "ReservedFunctionConcurrentInvocationLimitExceeded"
            finally:
                slow.join(30)

            with pytest.raises(ClientError) as missing:
                lam.invoke(FunctionName="nope", Payload=b"{}")
            assert _error(missing) == ("ResourceNotFoundException", 404)
            DataPlaneClient(tmp_path).shutdown()
            process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()


def test_invoke_event_dry_run_and_log_tail(tmp_path, handlers_dir, monkeypatch, start_data_plane):
    """DryRun answers 204 and runs nothing; Event answers 202 at once and runs in the background; LogType Tail gives
    the last 4 KB of the invocation's log (Lambda API Reference "Invoke": StatusCode, LogResult)."""
    process = start_data_plane(tmp_path)
    try:
        with ControlPlane(state_dir=tmp_path) as control:
            for key, value in client_environment(control.url).items():
                monkeypatch.setenv(key, value)
            lam = _served_function(tmp_path, handlers_dir, "modes")

            def logged(text: str) -> bool:
                return any(text in p.read_text() for p in (tmp_path / "logs").rglob("*.jsonl"))

            dry = lam.invoke(FunctionName="modes", Qualifier="live", InvocationType="DryRun",
                             Payload=json.dumps({"say": "dry run ran"}))
            assert dry["StatusCode"] == 204 and dry["Payload"].read() == b""

            started = time.monotonic()
            queued = lam.invoke(FunctionName="modes", Qualifier="live", InvocationType="Event",
                                Payload=json.dumps({"say": "event ran", "seconds": 2}))
            assert queued["StatusCode"] == 202 and queued["Payload"].read() == b""
            assert time.monotonic() - started < 2  # it did not wait for the function
            deadline = time.monotonic() + 30
            while not logged("event ran") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert logged("event ran") and not logged("dry run ran")

            tail = lam.invoke(FunctionName="modes", Qualifier="live", LogType="Tail",
                              Payload=json.dumps({"say": "x" * 6000 + " END-OF-SAY"}))
            assert tail["StatusCode"] == 200 and "FunctionError" not in tail
            log = base64.b64decode(tail["LogResult"])
            assert len(log) == 4096 and b"END-OF-SAY" in log and not log.startswith(b"START")
            assert log.decode().rstrip().splitlines()[-1].startswith("REPORT RequestId: ")
            plain = lam.invoke(FunctionName="modes", Qualifier="live", Payload=b"{}")
            assert "LogResult" not in plain
            DataPlaneClient(tmp_path).shutdown()
            process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
