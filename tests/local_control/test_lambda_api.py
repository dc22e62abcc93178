"""Lambda calls the emulator adds to moto: Function URLs per alias and provisioned concurrency, through boto3."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError

from mlfn.cli.local.function_urls import function_url_for

_n = itertools.count(1)


@pytest.fixture()
def function() -> str:
    """An image function with a published version and alias `live` on it."""
    iam, lam = boto3.client("iam"), boto3.client("lambda")
    try:
        role = iam.get_role(RoleName="mlfn-api-test")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="mlfn-api-test", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))["Role"]["Arn"]
    name = f"api-test-{next(_n)}"
    lam.create_function(FunctionName=name, PackageType="Image", Role=role, MemorySize=1024,
                        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris:1"})
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    return name


def error_code(failure: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = failure.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_function_urls_are_per_qualifier_and_served_on_127_0_0_1(function: str, control_dir: Path) -> None:
    lam = boto3.client("lambda")
    on_alias = lam.create_function_url_config(FunctionName=function, Qualifier="live", AuthType="AWS_IAM")
    unqualified = lam.create_function_url_config(FunctionName=function, AuthType="NONE")

    assert on_alias["FunctionUrl"] != unqualified["FunctionUrl"]
    assert on_alias["FunctionArn"].endswith(f":function:{function}:live")
    url = urlsplit(on_alias["FunctionUrl"])
    assert (url.scheme, url.hostname, url.path) == ("https", "127.0.0.1", "/") and url.port
    assert lam.get_function_url_config(FunctionName=function, Qualifier="live")["AuthType"] == "AWS_IAM"
    assert lam.get_function_url_config(FunctionName=function)["AuthType"] == "NONE"
    assert len(lam.list_function_url_configs(FunctionName=function)["FunctionUrlConfigs"]) == 2
    # mirrored for the data plane in another process
    records = json.loads((control_dir / "function-urls.json").read_text())
    assert {(r["function_name"], r["qualifier"], r["url"]) for r in records} >= {
        (function, "live", on_alias["FunctionUrl"]), (function, None, unqualified["FunctionUrl"])}
    assert function_url_for(function, "live", directory=control_dir) == on_alias["FunctionUrl"]

    lam.update_function_url_config(FunctionName=function, Qualifier="live", AuthType="NONE")
    assert lam.get_function_url_config(FunctionName=function, Qualifier="live")["AuthType"] == "NONE"
    lam.delete_function_url_config(FunctionName=function, Qualifier="live")
    with pytest.raises(ClientError) as failure:
        lam.get_function_url_config(FunctionName=function, Qualifier="live")
    assert error_code(failure) == ("ResourceNotFoundException", 404)


def test_function_url_refusals(function: str) -> None:
    lam = boto3.client("lambda")
    with pytest.raises(ClientError) as failure:
        lam.create_function_url_config(FunctionName=function, Qualifier="nope", AuthType="AWS_IAM")
    assert error_code(failure)[1] == 404
    with pytest.raises(ClientError) as failure:
        lam.create_function_url_config(FunctionName=function, Qualifier="live", AuthType="OPEN")
    assert "AuthType" in failure.value.response["Error"]["Message"]
    lam.create_function_url_config(FunctionName=function, Qualifier="live", AuthType="AWS_IAM")
    with pytest.raises(ClientError) as failure:
        lam.create_function_url_config(FunctionName=function, Qualifier="live", AuthType="AWS_IAM")
    assert error_code(failure) == ("ResourceConflictException", 409)


def test_provisioned_concurrency_lifecycle(function: str) -> None:
    lam = boto3.client("lambda")
    put = lam.put_provisioned_concurrency_config(FunctionName=function, Qualifier="live",
                                                 ProvisionedConcurrentExecutions=3)
    assert (put["RequestedProvisionedConcurrentExecutions"], put["Status"]) == (3, "READY")
    got = lam.get_provisioned_concurrency_config(FunctionName=function, Qualifier="live")
    assert got["AllocatedProvisionedConcurrentExecutions"] == 3
    listed = lam.list_provisioned_concurrency_configs(FunctionName=function)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"].rsplit(":", 1)[1] for c in listed] == ["live"]
    lam.delete_provisioned_concurrency_config(FunctionName=function, Qualifier="live")
    with pytest.raises(ClientError) as failure:
        lam.get_provisioned_concurrency_config(FunctionName=function, Qualifier="live")
    assert error_code(failure) == ("ProvisionedConcurrencyConfigNotFoundException", 404)


def test_provisioned_concurrency_refusals(function: str) -> None:
    lam = boto3.client("lambda")
    with pytest.raises(ClientError) as failure:
        lam.put_provisioned_concurrency_config(FunctionName=function, Qualifier="$LATEST",
                                               ProvisionedConcurrentExecutions=1)
    assert error_code(failure)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as failure:
        lam.put_provisioned_concurrency_config(FunctionName=function, Qualifier="missing",
                                               ProvisionedConcurrentExecutions=1)
    assert error_code(failure)[1] == 404
    lam.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=2)
    with pytest.raises(ClientError) as failure:
        lam.put_provisioned_concurrency_config(FunctionName=function, Qualifier="live",
                                               ProvisionedConcurrentExecutions=5)
    assert "reserved concurrency" in failure.value.response["Error"]["Message"]


def test_moto_routes_still_work(function: str) -> None:
    lam = boto3.client("lambda")
    assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == "1"
    assert lam.get_function(FunctionName=function)["Configuration"]["PackageType"] == "Image"


def test_deleting_the_function_forgets_its_urls_and_provisioned_concurrency(function: str) -> None:
    lam = boto3.client("lambda")
    url = lam.create_function_url_config(FunctionName=function, Qualifier="live", AuthType="NONE")["FunctionUrl"]
    lam.put_provisioned_concurrency_config(FunctionName=function, Qualifier="live", ProvisionedConcurrentExecutions=1)
    assert function_url_for(function, "live") == url

    lam.delete_function(FunctionName=function)

    assert function_url_for(function, "live") is None
    role = boto3.client("iam").get_role(RoleName="mlfn-api-test")["Role"]["Arn"]
    lam.create_function(FunctionName=function, PackageType="Image", Role=role,
                        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris:2"})
    with pytest.raises(ClientError) as failure:
        lam.get_function_url_config(FunctionName=function)
    assert error_code(failure)[1] == 404
