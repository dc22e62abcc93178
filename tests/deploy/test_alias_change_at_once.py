"""An alias change made with boto3 is what the Function URL serves as soon as UpdateAlias answers: the control plane
tells the data plane at once (`cli/local/change_notice.py`), instead of the data plane's next poll about a second
later. A rollback (the weights back to the alias's own version) is the case that matters: no request sent after it
may reach the bad version."""

from __future__ import annotations

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

from mlfn.cli.local.control_plane import client_environment

pytestmark = pytest.mark.slow
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"
FUNCTION = "alias-at-once"
ANSWER = "import os\n\ndef handler(event, context):\n    return {'statusCode': 200, 'body': os.environ['ANSWER']}\n"
ROLE_POLICY = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": '
               '"lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}')
RIGHT_AFTER = 5  # requests sent one after the other as soon as UpdateAlias answers (the first within ~10 ms)


@pytest.fixture(scope="module")
def emulator(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("at-once")
    runner = h.Cli(root / "home", root)
    try:
        info = runner("local", "start", "--json").json()
        env = client_environment(info["control_plane"])
        model = h.copy_model(IRIS, root / "answer", name="answer")
        (model / "answer.py").write_text(ANSWER)
        pushed = runner("push", str(model), "--base", "none", "--json", env=env).json()
        yield {**info, "env": env, "image": pushed["reference"]}
    finally:
        runner.stop_emulator()


@pytest.fixture(scope="module")
def lam(emulator: dict[str, Any]) -> Any:
    env = emulator["env"]
    kwargs = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                  aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    iam = boto3.client("iam", **kwargs)  # type: ignore[call-overload]
    role = iam.create_role(RoleName="at-once-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    client = boto3.client("lambda", **kwargs)  # type: ignore[call-overload]
    client.create_function(FunctionName=FUNCTION, PackageType="Image", Code={"ImageUri": emulator["image"]},
                           Role=role, ImageConfig={"Command": ["answer.handler"]}, Timeout=10,
                           Environment={"Variables": {"ANSWER": "one"}})
    return client


def post(emulator: dict[str, Any], url: str) -> httpx.Response:
    """POST to a Function URL, SigV4-signed by botocore (service lambda)."""
    env = emulator["env"]
    request = AWSRequest("POST", url, data=b"{}", headers={"content-type": "application/json"})
    SigV4Auth(Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]), "lambda",
              "us-east-1").add_auth(request)
    return httpx.post(request.url, content=b"{}", headers=dict(request.headers.items()), timeout=60,
                      verify=ssl.create_default_context(cafile=emulator["ca"]))


def answers_right_after(emulator: dict[str, Any], url: str, change: Any) -> tuple[list[str], float]:
    """`change()` (an UpdateAlias), then RIGHT_AFTER requests at once: their answers, and how long after the
    change answered the first was sent."""
    change()
    answered = time.monotonic()
    got, first_sent = [], 0.0
    for _ in range(RIGHT_AFTER):
        first_sent = first_sent or time.monotonic() - answered
        response = post(emulator, url)
        got.append(response.text if response.status_code == 200 else f"{response.status_code}: {response.text}")
    return got, first_sent


def test_the_function_url_serves_an_alias_change_as_soon_as_update_alias_answers(
        emulator: dict[str, Any], lam: Any, h: Any) -> None:
    v1 = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.update_function_configuration(FunctionName=FUNCTION, Environment={"Variables": {"ANSWER": "two"}})
    v2 = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=v1)
    url = lam.create_function_url_config(FunctionName=FUNCTION, Qualifier="live", AuthType="AWS_IAM")["FunctionUrl"]

    def answer() -> str:
        try:
            return post(emulator, url).text
        except httpx.TransportError:
            return ""

    assert h.wait_until(lambda: answer() == "one", timeout_s=90, every_s=0.5)  # served (image unpacked once)
    steps = [  # (what UpdateAlias sets, the only answer allowed right after)
        ({"FunctionVersion": v2}, "two"),  # the alias moves to the new version
        ({"FunctionVersion": v1}, "one"),  # and back
        ({"FunctionVersion": v1, "RoutingConfig": {"AdditionalVersionWeights": {v2: 1.0}}}, "two"),  # all weight
        ({"FunctionVersion": v1, "RoutingConfig": {"AdditionalVersionWeights": {}}}, "one"),  # a rollback
    ]
    for update, expected in steps:
        got, first_sent = answers_right_after(
            emulator, url, lambda u=update: lam.update_alias(FunctionName=FUNCTION, Name="live", **u))
        assert first_sent < 0.1, first_sent
        assert got == [expected] * RIGHT_AFTER, (update, got)
