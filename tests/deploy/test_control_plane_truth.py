"""The emulator serves what the AWS APIs hold, whoever wrote it: a function, alias and Function URL created with boto3
only (the image pushed by `mlfn push`), called over HTTPS with a botocore-signed request and through
`lambda.invoke`; a configuration change made through the API reaches the sandboxes without any mlfn command."""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from mlfn.cli.local.control_plane import client_environment
from mlfn.cli.local.payload_v2 import request_event

pytestmark = pytest.mark.slow
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
ROWS = json.loads((IRIS / "example.json").read_text())["instances"]
FUNCTION = "boto-made"
PATH = "/v1/models/plain:predict"
ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture(scope="module")
def emulator(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("truth")
    runner = h.Cli(root / "home", root)
    try:
        info = runner("local", "start", "--json").json()
        env = client_environment(info["control_plane"])
        model = h.copy_model(IRIS, root / "plain", name="plain")
        (model / "broken.py").write_text("def handler(event, context):\n    raise ValueError('broken on purpose')\n")
        pushed = runner("push", str(model), "--base", "none", "--json", env=env).json()
        yield {**info, "env": env, "image": pushed["reference"], "model": model, "cli": runner}
    finally:
        runner.stop_emulator()


@pytest.fixture(scope="module")
def aws(emulator: dict[str, Any]) -> dict[str, Any]:
    env = emulator["env"]
    kwargs = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                  aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    return {name: boto3.client(name, **kwargs) for name in ("lambda", "iam", "logs")}  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def function_url(emulator: dict[str, Any], aws: dict[str, Any]) -> str:
    """Function, version, alias `live` and its IAM Function URL, made with boto3 only."""
    lam = aws["lambda"]
    role = aws["iam"].create_role(RoleName="boto-made-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    lam.create_function(FunctionName=FUNCTION, PackageType="Image", Code={"ImageUri": emulator["image"]},
                        Role=role, MemorySize=256, Timeout=20)
    version = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=version)
    return str(lam.create_function_url_config(FunctionName=FUNCTION, Qualifier="live",
                                              AuthType="AWS_IAM")["FunctionUrl"])


def signed_post(emulator: dict[str, Any], url: str, body: bytes) -> httpx.Response:
    """POST `body` to a Function URL with a SigV4 signature made by botocore (service lambda)."""
    env = emulator["env"]
    request = AWSRequest("POST", url.rstrip("/") + PATH, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]), "lambda",
              "us-east-1").add_auth(request)
    return httpx.post(request.url, content=body, headers=dict(request.headers.items()), timeout=60,
                      verify=ssl.create_default_context(cafile=emulator["ca"]))


def call_until_served(emulator: dict[str, Any], url: str, timeout_s: float = 90) -> httpx.Response:
    """The data plane follows the control plane within a few seconds (image unpacked once): retry until it serves."""
    body = json.dumps({"instances": ROWS}).encode()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = signed_post(emulator, url, body)
            if response.status_code == 200 or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def url_event() -> bytes:
    """What a Function URL hands the function for a predict request (payload format 2.0)."""
    event = request_event(method="POST", raw_path=PATH, raw_query="", headers=[("content-type", "application/json")],
                          body=json.dumps({"instances": ROWS}).encode(), source_ip="127.0.0.1", url_id="x",
                          domain="x.lambda-url.us-east-1.on.aws", request_id="r-1", caller=None)
    return json.dumps(event).encode()


def test_a_function_made_with_boto3_is_served_at_its_url_and_follows_a_memory_change(
        emulator: dict[str, Any], aws: dict[str, Any], function_url: str, h: Any) -> None:
    first = call_until_served(emulator, function_url)
    assert first.status_code == 200, first.text
    assert h.same_predictions(first.json()["predictions"], h.onnxruntime_answer(emulator["model"], ROWS))
    assert first.headers["x-mlfn-cold-start"] == "true"

    lam = aws["lambda"]
    lam.update_function_configuration(FunctionName=FUNCTION, MemorySize=512)
    version = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=version)

    def restarted() -> bool:
        tail = lam.invoke(FunctionName=FUNCTION, Qualifier="live", Payload=url_event(), LogType="Tail")
        return "Memory Size: 512 MB" in base64.b64decode(tail["LogResult"]).decode()

    assert h.wait_until(restarted, timeout_s=60, every_s=1)
    again = signed_post(emulator, function_url, json.dumps({"instances": ROWS}).encode())
    assert again.status_code == 200 and again.headers["x-mlfn-cold-start"] == "false"  # the new sandbox is warm
    assert lam.get_function_url_config(FunctionName=FUNCTION, Qualifier="live")["FunctionUrl"] == function_url


def test_invoke_request_response_with_the_log_tail(aws: dict[str, Any], function_url: str) -> None:
    answer = aws["lambda"].invoke(FunctionName=FUNCTION, Qualifier="live", Payload=url_event(), LogType="Tail")
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    result = json.loads(answer["Payload"].read())
    assert result["statusCode"] == 200 and len(json.loads(result["body"])["predictions"]) == len(ROWS)
    log = base64.b64decode(answer["LogResult"])
    assert len(log) <= 4096
    assert log.decode().startswith("START RequestId: ") and "REPORT RequestId: " in log.decode()
    assert answer["ExecutedVersion"].isdigit()


def test_invoke_function_error_is_unhandled_with_lambdas_error_document(emulator: dict[str, Any], aws: dict[str, Any],
                                                                         function_url: str) -> None:
    """A function without a URL (the image's other handler, through ImageConfig), invoked on $LATEST."""
    lam = aws["lambda"]
    role = aws["iam"].get_role(RoleName="boto-made-role")["Role"]["Arn"]
    lam.create_function(FunctionName="boto-broken", PackageType="Image", Code={"ImageUri": emulator["image"]},
                        Role=role, ImageConfig={"Command": ["broken.handler"]})
    answer = lam.invoke(FunctionName="boto-broken", Payload=b'{"any": "event"}')
    assert answer["StatusCode"] == 200 and answer["FunctionError"] == "Unhandled"
    assert answer["ExecutedVersion"] == "$LATEST"
    error = json.loads(answer["Payload"].read())
    assert error["errorMessage"] == "broken on purpose" and error["errorType"] == "ValueError"
    assert isinstance(error["stackTrace"], list) and error["stackTrace"]


def test_invoke_event_answers_202_and_runs_in_the_background(aws: dict[str, Any], function_url: str,
                                                              h: Any) -> None:
    logs = aws["logs"]

    def reports() -> int:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{FUNCTION}", filterPattern="REPORT")["events"]
        return len(events)

    before = reports()
    answer = aws["lambda"].invoke(FunctionName=FUNCTION, Qualifier="live", Payload=url_event(),
                                  InvocationType="Event")
    assert answer["StatusCode"] == 202 and answer["Payload"].read() == b""
    assert h.wait_until(lambda: reports() > before, timeout_s=30)
    dry = aws["lambda"].invoke(FunctionName=FUNCTION, Qualifier="live", Payload=b"{}", InvocationType="DryRun")
    assert dry["StatusCode"] == 204


def test_invoke_of_an_unknown_function_is_resource_not_found(aws: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as caught:
        aws["lambda"].invoke(FunctionName="no-such-function", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_a_url_that_cannot_be_served_answers_a_clear_error_at_once(emulator: dict[str, Any], aws: dict[str, Any],
                                                                   function_url: str, h: Any) -> None:
    """The data plane binds a Function URL's port when the URL is created, and says why nothing runs there."""
    lam = aws["lambda"]
    role = aws["iam"].get_role(RoleName="boto-made-role")["Role"]["Arn"]
    missing = emulator["image"].split("@")[0] + ":never-pushed"
    lam.create_function(FunctionName="boto-imageless", PackageType="Image", Code={"ImageUri": missing}, Role=role)
    url = lam.create_function_url_config(FunctionName="boto-imageless", AuthType="NONE")["FunctionUrl"]
    context = ssl.create_default_context(cafile=emulator["ca"])
    first = httpx.post(url, content=b"{}", verify=context, timeout=30)  # bound already: never a refused connection
    assert first.status_code == 503

    def reason() -> str:
        reply = httpx.post(url, content=b"{}", verify=context, timeout=30)
        return str(reply.json()["Message"]) if reply.status_code == 503 else ""

    message = h.wait_until(lambda: "not in the emulator's ECR" in reason() and reason(), timeout_s=30)
    assert "boto-imageless:$LATEST" in message and missing in message
    not_served = emulator["cli"]("local", "status", "--json").json()["not_served"]
    assert missing in not_served["lambda:boto-imageless:$LATEST"]  # `mlfn local status` says so too
    # nor does it keep other functions from being served: one in a repository that does not exist at all
    lam.create_function(FunctionName="boto-norepo", PackageType="Image", Role=role,
                        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/no-such-repo:v1"})
    lam.create_function_url_config(FunctionName="boto-norepo", AuthType="NONE")
    lam.create_function(FunctionName="boto-after", PackageType="Image", Role=role,
                        Code={"ImageUri": emulator["image"]}, ImageConfig={"Command": ["broken.handler"]})
    answer = lam.invoke(FunctionName="boto-after", Payload=b"{}")
    assert answer["FunctionError"] == "Unhandled" and b"broken on purpose" in answer["Payload"].read()
    # what it runs, although no stack holds it: the image has no runtime base, so the host runtime, and why
    served = {s["key"]: s for s in emulator["cli"]("local", "status", "--json").json()["served"]}
    after = served["lambda:boto-after:$LATEST"]
    assert after["url"] is None and after["runs"].startswith("host runtime"), after
    assert "the image has no runtime base" in after["runs"]
    assert "runs: host runtime" in emulator["cli"]("local", "status").stdout


def test_a_sagemaker_endpoint_made_with_boto3_answers_invoke_endpoint(emulator: dict[str, Any], aws: dict[str, Any],
                                                                       function_url: str, h: Any) -> None:
    env = emulator["env"]
    kwargs = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                  aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    sm = boto3.client("sagemaker", **kwargs)  # type: ignore[call-overload]
    runtime = boto3.client("sagemaker-runtime", **kwargs)  # type: ignore[call-overload]
    role = aws["iam"].get_role(RoleName="boto-made-role")["Role"]["Arn"]
    sm.create_model(ModelName="boto-model", ExecutionRoleArn=role, PrimaryContainer={"Image": emulator["image"]})
    sm.create_endpoint_config(EndpointConfigName="boto-config", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "boto-model", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName="boto-endpoint", EndpointConfigName="boto-config")
    answer = runtime.invoke_endpoint(EndpointName="boto-endpoint", ContentType="application/json",
                                     Accept="application/json", Body=json.dumps({"instances": ROWS}))
    predictions = json.loads(answer["Body"].read())["predictions"]
    assert h.same_predictions(predictions, h.onnxruntime_answer(emulator["model"], ROWS))


def test_an_alias_routing_config_splits_requests_between_two_versions(aws: dict[str, Any], function_url: str,
                                                                      h: Any) -> None:
    """update_alias with RoutingConfig (AdditionalVersionWeights): each version answers its share of the alias's
    requests, ExecutedVersion saying which; without it, only the alias's version answers."""
    lam = aws["lambda"]
    old = lam.get_alias(FunctionName=FUNCTION, Name="live")["FunctionVersion"]
    lam.update_function_configuration(FunctionName=FUNCTION, Timeout=21)  # a change, so a new version
    new = lam.publish_version(FunctionName=FUNCTION)["Version"]
    assert new != old
    lam.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=new,
                     RoutingConfig={"AdditionalVersionWeights": {old: 0.5}})

    def answered(count: int) -> list[str]:
        return [lam.invoke(FunctionName=FUNCTION, Qualifier="live", Payload=url_event())["ExecutedVersion"]
                for _ in range(count)]

    # until the reconciler applies the update only the old version answers: the new one answering shows it applied
    assert h.wait_until(lambda: new in answered(4), timeout_s=60, every_s=1)
    versions = answered(40)  # all 40 from one version: probability 2 x 0.5^40
    assert set(versions) == {old, new}, versions
    lam.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=new, RoutingConfig={})
    assert h.wait_until(lambda: set(answered(10)) == {new}, timeout_s=60, every_s=1)


def test_invocations_reach_cloudwatch_as_lambdas_metrics_and_the_models_emf(emulator: dict[str, Any],
                                                                           aws: dict[str, Any], function_url: str,
                                                                           h: Any) -> None:
    """The data plane meters each call (AWS/Lambda Invocations per FunctionName, Resource and, through an alias,
    ExecutedVersion) and turns the sandbox's EMF lines into metrics (namespace mlfn), in the control plane's
    CloudWatch; read back with boto3."""
    env = emulator["env"]
    cw = boto3.client("cloudwatch", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    lam = aws["lambda"]
    version = lam.get_alias(FunctionName=FUNCTION, Name="live")["FunctionVersion"]
    for _ in range(3):
        assert "FunctionError" not in lam.invoke(FunctionName=FUNCTION, Qualifier="live", Payload=url_event())

    def total(namespace: str, metric: str, dimensions: dict[str, str]) -> float:
        now = time.time()
        points = cw.get_metric_statistics(
            Namespace=namespace, MetricName=metric, Statistics=["Sum"], Period=60,
            StartTime=now - 600, EndTime=now + 60,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()])["Datapoints"]
        return sum(p["Sum"] for p in points)

    executed = {"FunctionName": FUNCTION, "Resource": f"{FUNCTION}:live", "ExecutedVersion": version}
    assert h.wait_until(lambda: total("AWS/Lambda", "Invocations", executed) >= 3, timeout_s=30)
    assert total("AWS/Lambda", "Invocations", {"FunctionName": FUNCTION}) >= 3
    assert total("AWS/Lambda", "Errors", {"FunctionName": FUNCTION}) == 0
    emf = {m["MetricName"] for m in cw.list_metrics(Namespace="mlfn")["Metrics"]}
    assert "ServerErrors" in emf, emf


def test_delete_function_stops_serving_its_url(emulator: dict[str, Any], aws: dict[str, Any], function_url: str,
                                               h: Any) -> None:
    aws["lambda"].delete_function(FunctionName=FUNCTION)

    def gone() -> bool:
        try:
            signed_post(emulator, function_url, b"{}")
        except httpx.TransportError:
            return True
        return False

    assert h.wait_until(gone, timeout_s=30)
