"""Invoke needs the data plane to run the function: without one (the control plane alone), a clear 500 instead of
moto's echo of the payload."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


def test_invoke_without_a_data_plane_is_a_service_exception_naming_local_start() -> None:
    iam, lam = boto3.client("iam"), boto3.client("lambda", config=Config(retries={"max_attempts": 1}))
    role = iam.create_role(RoleName="no-data-plane-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]}))
    lam.create_function(FunctionName="no-data-plane", PackageType="Image", Role=role["Role"]["Arn"],
                        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/none:1"})
    with pytest.raises(ClientError) as failure:
        lam.invoke(FunctionName="no-data-plane", Payload=b'{"echo": "me"}')
    response = failure.value.response
    assert response["Error"]["Code"] == "ServiceException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "mlfn local start" in response["Error"]["Message"]
    assert lam.invoke(FunctionName="no-data-plane", InvocationType="DryRun")["StatusCode"] == 204  # nothing to run
