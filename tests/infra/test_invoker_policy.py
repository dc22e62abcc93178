"""The `InvokerPolicy` output: the ready identity policy a caller of each model's URL needs, in the stack's own
partition (never a literal `aws`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import Synthesized


def render(value: Any) -> str:
    """The output's text with CloudFormation's references shown as `${Name}` / `${Resource.Attribute}`."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(render(part) for part in parts)
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    if "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    raise AssertionError(f"unexpected intrinsic in the policy: {value}")


def invoker_policy(synthesized: Synthesized, key: str) -> dict[str, Any]:
    output = synthesized.templates[key]["Outputs"]["InvokerPolicy"]["Value"]
    text = render(output)
    assert "arn:aws" not in text  # ARNs come from references or carry ${AWS::Partition}
    return dict(json.loads(text))


@pytest.mark.parametrize("key", ["lam-default", "lam-default+uri"])
def test_lambda_callers_need_invoke_function_url_and_invoke_function_through_the_url(
        synthesized: Synthesized, key: str) -> None:
    policy = invoker_policy(synthesized, key)
    assert policy["Version"] == "2012-10-17"
    url, invoke = policy["Statement"]
    alias = synthesized.templates[key]["Resources"]
    alias_id = next(k for k, r in alias.items() if r["Type"] == "AWS::Lambda::Alias")
    assert url == {"Sid": "InvokeFunctionUrl", "Effect": "Allow", "Action": "lambda:InvokeFunctionUrl",
                   "Resource": "${" + alias_id + "}",
                   "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}}
    assert invoke == {"Sid": "InvokeFunctionThroughUrl", "Effect": "Allow", "Action": "lambda:InvokeFunction",
                      "Resource": "${" + alias_id + "}",
                      "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}}


def test_a_public_url_needs_no_invoker_policy(synthesized: Synthesized) -> None:
    assert "InvokerPolicy" not in synthesized.templates["lam-public"]["Outputs"]


@pytest.mark.parametrize("key", ["sm-gpu", "sm-serverless", "sm-gpu+uri"])
def test_sagemaker_callers_need_execute_api_invoke_on_the_rest_apis_post_methods(
        synthesized: Synthesized, key: str) -> None:
    (statement,) = invoker_policy(synthesized, key)["Statement"]
    api = next(k for k, r in synthesized.templates[key]["Resources"].items() if r["Type"] == "AWS::ApiGateway::RestApi")
    assert statement["Action"] == "execute-api:Invoke" and statement["Effect"] == "Allow"
    assert statement["Resource"] == (
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${" + api + "}/live/POST/*")


@pytest.mark.parametrize("key", ["ecs-gpu", "ecs-gpu+uri"])
def test_ecs_callers_need_execute_api_invoke_on_the_http_apis_default_stage(synthesized: Synthesized,
                                                                              key: str) -> None:
    (statement,) = invoker_policy(synthesized, key)["Statement"]
    api = next(k for k, r in synthesized.templates[key]["Resources"].items() if r["Type"] == "AWS::ApiGatewayV2::Api")
    assert statement["Action"] == "execute-api:Invoke"
    assert statement["Resource"] == (
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${" + api + "}/$default/*/*")
