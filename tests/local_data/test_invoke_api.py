"""Lambda's Invoke API through boto3 against the control plane, run by the data plane process (moto only echoes)."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from mlfn.cli.local.control_plane import ControlPlane, client_environment
from mlfn.cli.local.data_plane import DataPlaneClient


def _error(failure: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = failure.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_invoke_runs_the_function_with_lambdas_results_and_errors(tmp_path, handlers_dir, monkeypatch,
                                                                  start_data_plane):
    process = start_data_plane(tmp_path)
    try:
        with ControlPlane(state_dir=tmp_path) as control:
            for key, value in client_environment(control.url).items():
                monkeypatch.setenv(key, value)
            iam = boto3.client("iam")
            lam = boto3.client("lambda", config=Config(retries={"max_attempts": 1}, read_timeout=60))
            role = iam.create_role(RoleName="invoke-test", AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                        "Principal": {"Service": "lambda.amazonaws.com"}}]}))
            lam.create_function(FunctionName="direct", PackageType="Image", Role=role["Role"]["Arn"],
                                Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/direct:1"})
            lam.create_alias(FunctionName="direct", Name="live",
                             FunctionVersion=lam.publish_version(FunctionName="direct")["Version"])
            DataPlaneClient(tmp_path).register_lambda("direct", handlers_dir, handler="tiny.direct",
                                                      task_root=str(handlers_dir), auth_type="NONE", memory_mb=256,
                                                      timeout_s=10, reserved=1)

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
