"""AWS_IAM Function URLs authorize the caller, not only the signature: a key made with the control plane's IAM
(a user, or an assumed role) needs `lambda:InvokeFunctionUrl` and `lambda:InvokeFunction` (through the URL), from
its own policies or the function's resource-based policy; otherwise 403 with Lambda's own body. Only boto3 and
botocore's SigV4Auth on the client side; a real control plane (moto) and data plane over HTTP(S)."""

from __future__ import annotations

import io
import json
import ssl
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mlfn.cli.local.control_plane import ControlPlane
from mlfn.cli.local.data_plane import DataPlane, Registration

HANDLERS = Path(__file__).resolve().parent / "handlers"
DENIED = {"Message": "Forbidden. For troubleshooting Function URL authorization issues, see: "
                     "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"}
REGION = "us-east-1"


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(state_dir=tmp_path_factory.mktemp("control")) as plane:
        yield plane


@pytest.fixture(scope="module")
def data(control: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    dp = DataPlane(tmp_path_factory.mktemp("data"), persist=False, control_plane=control.url)
    dp.start()
    yield dp
    dp.stop()


def admin(control: ControlPlane, service: str) -> Any:
    return boto3.client(service, endpoint_url=control.url, region_name=REGION,
                        aws_access_key_id="mlfn-local", aws_secret_access_key="mlfn-local-secret")


@pytest.fixture(scope="module")
def url(control: ControlPlane, data: DataPlane) -> Iterator[Registration]:
    """An AWS_IAM Function URL on alias `live` of a function that also exists in the control plane."""
    name = "iam-checked"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.py", "def handler(event, context):\n    return {}\n")
    lam = admin(control, "lambda")
    role = admin(control, "iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="index.handler",
                        Code={"ZipFile": buf.getvalue()})
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="$LATEST")
    ep = data.register_lambda(name, HANDLERS, handler="tiny.echo", task_root=str(HANDLERS), auth_type="AWS_IAM",
                              memory_mb=256, timeout_s=5)
    yield ep
    data.unregister(ep.key)


@pytest.fixture(scope="module")
def client(data: DataPlane) -> Iterator[httpx.Client]:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(data.ca_path)), timeout=30) as c:
        yield c


def call(client: httpx.Client, url: str, creds: Credentials) -> httpx.Response:
    target = url + "v1/models/m:predict"
    request = AWSRequest(method="POST", url=target, data=b"{}", headers={"content-type": "application/json"})
    SigV4Auth(creds, "lambda", REGION).add_auth(request)
    return client.post(target, content=b"{}", headers=dict(request.headers))


def new_user(control: ControlPlane, name: str, *statements: dict[str, Any]) -> Credentials:
    iam = admin(control, "iam")
    iam.create_user(UserName=name)
    if statements:
        put_policy(control, name, "invoke", *statements)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def put_policy(control: ControlPlane, user: str, policy: str, *statements: dict[str, Any]) -> None:
    document = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    admin(control, "iam").put_user_policy(UserName=user, PolicyName=policy, PolicyDocument=document)


def allow(action: str, resource: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


ARN = f"arn:aws:lambda:{REGION}:123456789012:function:iam-checked:live"
VIA_URL = {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}


def test_invoke_function_url_alone_is_403_then_invoke_function_through_the_url_is_200(
        control: ControlPlane, url: Registration, client: httpx.Client) -> None:
    creds = new_user(control, "url-only", allow("lambda:InvokeFunctionUrl", ARN))
    denied = call(client, url.url, creds)
    assert denied.status_code == 403 and denied.json() == DENIED
    assert denied.headers["x-amzn-errortype"] == "AccessDeniedException"
    assert "lambda:InvokeFunction " in denied.headers["x-mlfn-error"]

    put_policy(control, "url-only", "through-url", allow("lambda:InvokeFunction", ARN, VIA_URL))
    reply = call(client, url.url, creds)
    assert reply.status_code == 200, reply.text
    iam = reply.json()["event"]["requestContext"]["authorizer"]["iam"]
    assert iam["userArn"] == "arn:aws:iam::123456789012:user/url-only" and iam["accessKey"] == creds.access_key


def test_a_user_without_policies_a_wrong_condition_and_an_explicit_deny_get_403(
        control: ControlPlane, url: Registration, client: httpx.Client) -> None:
    nothing = new_user(control, "nothing")
    assert call(client, url.url, nothing).json() == DENIED
    wrong = new_user(control, "wrong-condition", allow("lambda:InvokeFunctionUrl", ARN),
                     allow("lambda:InvokeFunction", ARN, {"Bool": {"lambda:InvokedViaFunctionUrl": "false"}}))
    assert call(client, url.url, wrong).status_code == 403
    wildcard = new_user(control, "wildcard", allow("lambda:Invoke*", "arn:aws:lambda:*:*:function:iam-checked:*"))
    assert call(client, url.url, wildcard).status_code == 200
    put_policy(control, "wildcard", "deny", {"Effect": "Deny", "Action": "lambda:InvokeFunction", "Resource": "*"})
    assert call(client, url.url, wildcard).status_code == 403


def test_group_and_attached_managed_policies_count(control: ControlPlane, url: Registration,
                                                   client: httpx.Client) -> None:
    iam = admin(control, "iam")
    creds = new_user(control, "in-group")
    document = json.dumps({"Version": "2012-10-17", "Statement": [allow("lambda:InvokeFunctionUrl", ARN)]})
    managed = iam.create_policy(PolicyName="url", PolicyDocument=document)["Policy"]["Arn"]
    iam.attach_user_policy(UserName="in-group", PolicyArn=managed)
    assert call(client, url.url, creds).status_code == 403
    iam.create_group(GroupName="callers")
    iam.put_group_policy(GroupName="callers", PolicyName="through-url", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [allow("lambda:InvokeFunction", ARN, VIA_URL)]}))
    iam.add_user_to_group(GroupName="callers", UserName="in-group")
    assert call(client, url.url, creds).status_code == 200


def test_the_functions_resource_based_policy_can_grant_both(control: ControlPlane, url: Registration,
                                                            client: httpx.Client) -> None:
    creds = new_user(control, "by-resource-policy")
    assert call(client, url.url, creds).status_code == 403
    user_arn = "arn:aws:iam::123456789012:user/by-resource-policy"
    lam = admin(control, "lambda")
    lam.add_permission(FunctionName="iam-checked", Qualifier="live", StatementId="url", Principal=user_arn,
                       Action="lambda:InvokeFunctionUrl", FunctionUrlAuthType="AWS_IAM")
    assert call(client, url.url, creds).status_code == 403
    lam.add_permission(FunctionName="iam-checked", Qualifier="live", StatementId="invoke", Principal=user_arn,
                       Action="lambda:InvokeFunction", InvokedViaFunctionUrl=True)
    assert call(client, url.url, creds).status_code == 200


def test_an_assumed_role_session_is_checked_against_its_roles_policies(control: ControlPlane, url: Registration,
                                                                       client: httpx.Client) -> None:
    iam = admin(control, "iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]})
    role = iam.create_role(RoleName="caller", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    session = admin(control, "sts").assume_role(RoleArn=role, RoleSessionName="s1")["Credentials"]
    creds = Credentials(session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"])
    assert call(client, url.url, creds).status_code == 403
    iam.put_role_policy(RoleName="caller", PolicyName="invoke", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [allow("lambda:InvokeFunctionUrl", ARN),
                                                allow("lambda:InvokeFunction", ARN, VIA_URL)]}))
    reply = call(client, url.url, creds)
    assert reply.status_code == 200
    assert reply.json()["event"]["requestContext"]["authorizer"]["iam"]["userArn"] == (
        "arn:aws:sts::123456789012:assumed-role/caller/s1")
    wrong_token = Credentials(session["AccessKeyId"], session["SecretAccessKey"], "not-the-token")
    refused = call(client, url.url, wrong_token)
    assert refused.status_code == 403 and refused.json() == {"Message": "Forbidden"}


def test_the_emulators_own_key_stands_for_the_admin_and_a_wrong_secret_still_fails_the_signature(
        control: ControlPlane, url: Registration, client: httpx.Client) -> None:
    assert call(client, url.url, Credentials("mlfn-local", "mlfn-local-secret")).status_code == 200
    creds = new_user(control, "bad-secret", allow("lambda:Invoke*", ARN))
    forged = call(client, url.url, Credentials(creds.access_key, "not-the-secret"))
    assert forged.status_code == 403 and forged.json() == {"Message": "Forbidden"}
    assert "signature does not match" in forged.headers["x-mlfn-error"]


def test_an_unreachable_control_plane_is_a_403_that_says_so(data: DataPlane, url: Registration, client: httpx.Client,
                                                              control: ControlPlane) -> None:
    from mlfn.cli.local.iam_callers import CallerDirectory

    creds = new_user(control, "while-down", allow("lambda:Invoke*", ARN))
    working = data.gateway.callers
    data.gateway.callers = CallerDirectory("http://127.0.0.1:9", timeout=2)  # nothing listens on the discard port
    try:
        refused = call(client, url.url, creds)
    finally:
        data.gateway.callers = working
    assert refused.status_code == 403 and "could not say who holds access key" in refused.headers["x-mlfn-error"]
    assert call(client, url.url, creds).status_code == 200
