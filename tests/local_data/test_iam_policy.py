"""The emulator's policy evaluator: AWS's same-account rules (explicit Deny wins; an Allow in an identity-based or
the resource-based policy allows; else implicit deny), wildcards and the condition operators it knows."""

from __future__ import annotations

from typing import Any

import pytest

from mlfn.cli.local.iam_policy import Decision, Request, evaluate

USER = "arn:aws:iam::123456789012:user/alice"
FN = "arn:aws:lambda:us-east-1:123456789012:function:iris:live"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def ask(action: str = "lambda:InvokeFunction", context: dict[str, str] | None = None) -> Request:
    return Request((USER,), action, FN, context or {})


@pytest.mark.parametrize(("statement", "decision"), [
    ({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": FN}, Decision.ALLOW),
    ({"Effect": "Allow", "Action": "LAMBDA:invoke*", "Resource": "arn:aws:lambda:*:*:function:iris:*"},
     Decision.ALLOW),
    ({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": FN[:-5]}, Decision.IMPLICIT_DENY),
    ({"Effect": "Allow", "Action": "lambda:InvokeFunction?", "Resource": "*"}, Decision.IMPLICIT_DENY),
    ({"Effect": "Allow", "NotAction": "lambda:InvokeFunctionUrl", "Resource": "*"}, Decision.ALLOW),
    ({"Effect": "Allow", "Action": "*", "NotResource": FN}, Decision.IMPLICIT_DENY),
    ({"Effect": "Allow", "Action": "lambda:InvokeFunction"}, Decision.IMPLICIT_DENY),  # no Resource
])
def test_actions_and_resources(statement: dict[str, Any], decision: Decision) -> None:
    assert evaluate(ask(), [policy(statement)]) is decision


def test_explicit_deny_wins_over_allows_anywhere() -> None:
    allow = policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
    deny = policy({"Effect": "Deny", "Action": "lambda:*", "Resource": "*"})
    resource = policy({"Effect": "Allow", "Principal": {"AWS": USER}, "Action": "lambda:InvokeFunction",
                       "Resource": FN})
    assert evaluate(ask(), [allow, deny], resource) is Decision.EXPLICIT_DENY
    assert evaluate(ask(), [], resource) is Decision.ALLOW


@pytest.mark.parametrize(("principal", "decision"), [
    ("*", Decision.ALLOW), ({"AWS": "*"}, Decision.ALLOW), ({"AWS": [USER]}, Decision.ALLOW),
    ({"AWS": "arn:aws:iam::123456789012:user/bob"}, Decision.IMPLICIT_DENY),
    ({"AWS": "arn:aws:iam::123456789012:root"}, Decision.IMPLICIT_DENY),  # names the account, not the user
    ({"Service": "lambda.amazonaws.com"}, Decision.IMPLICIT_DENY),
])
def test_resource_based_principals(principal: Any, decision: Decision) -> None:
    resource = policy({"Effect": "Allow", "Principal": principal, "Action": "lambda:InvokeFunction", "Resource": FN})
    assert evaluate(ask(), [], resource) is decision


@pytest.mark.parametrize(("condition", "context", "decision"), [
    ({"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}, {"lambda:InvokedViaFunctionUrl": "true"}, Decision.ALLOW),
    ({"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}, {}, Decision.IMPLICIT_DENY),
    ({"Bool": {"lambda:invokedviafunctionurl": "TRUE"}}, {"lambda:InvokedViaFunctionUrl": "true"}, Decision.ALLOW),
    ({"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}, {"lambda:FunctionUrlAuthType": "NONE"},
     Decision.IMPLICIT_DENY),
    ({"StringNotEquals": {"lambda:FunctionUrlAuthType": "NONE"}}, {}, Decision.ALLOW),
    ({"StringEqualsIfExists": {"lambda:FunctionUrlAuthType": "NONE"}}, {}, Decision.ALLOW),
    ({"StringLike": {"lambda:FunctionUrlAuthType": ["NO*", "AWS_*"]}}, {"lambda:FunctionUrlAuthType": "AWS_IAM"},
     Decision.ALLOW),
    ({"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}, {"aws:MultiFactorAuthAge": "5"},
     Decision.IMPLICIT_DENY),  # an operator it does not evaluate never matches
])
def test_conditions(condition: dict[str, Any], context: dict[str, str], decision: Decision) -> None:
    statement = {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": FN, "Condition": condition}
    assert evaluate(ask(context=context), [policy(statement)]) is decision
