"""Who signed a request, and what they may do: the emulator's IAM identities for the gateway.

Credentials made with the control plane's IAM (`iam.create_access_key` for a user) or STS (`sts.assume_role`) are
known to moto only, in the control plane's process. The control plane therefore answers, for the data plane's
gateway, `POST /moto-api/mlfn/caller` with `{"access_key", "session_token", "date", "region", "service",
"function", "qualifier"}`: the identity's ARNs, its identity-based policies (inline, attached managed, and its
groups' for a user; inline and attached for an assumed role's role), the function's resource-based policy, and the
SigV4 signing key for that date, region and service (derived as AWS does, so the secret itself never leaves moto).
An unknown key, or an assumed role's key with the wrong session token, gets 404.

`CallerDirectory(control_url)` is the data plane's side; `caller_scope(headers, raw_query)` reads the access key
and credential scope from a signed request (Authorization header or presigned query).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .config import ACCOUNT
from .sigv4 import signing_key

ROUTE = "/moto-api/mlfn/caller"
PARTITION = "aws"


class CallerLookupError(Exception):
    """The control plane could not be asked about an access key (not running, or a broken answer)."""


@dataclass(frozen=True)
class CallerScope:
    access_key: str
    date: str
    region: str
    service: str
    session_token: str


@dataclass(frozen=True)
class Identity:
    """An IAM user or assumed-role session of the emulator, as the gateway needs it."""

    access_key: str
    arns: tuple[str, ...]  # the principal's ARN first (a session's role ARN after it)
    account_id: str
    user_id: str
    signing_key: bytes
    policies: tuple[dict[str, Any], ...]
    resource_policy: dict[str, Any] | None

    @property
    def arn(self) -> str:
        return self.arns[0]


def caller_scope(headers: Sequence[tuple[str, str]], raw_query: str) -> CallerScope | None:
    """The access key, credential scope and session token a request is signed with (None when unsigned)."""
    lower = {k.lower(): v for k, v in headers}
    query = dict(p.partition("=")[::2] for p in raw_query.split("&") if p) if raw_query else {}
    auth = lower.get("authorization", "")
    if "Credential=" in auth:
        credential = auth.split("Credential=", 1)[1].split(",", 1)[0].strip()
        token = lower.get("x-amz-security-token", "")
    else:
        credential = unquote(query.get("X-Amz-Credential", ""))
        token = unquote(query.get("X-Amz-Security-Token", ""))
    parts = credential.split("/")
    if len(parts) != 5:
        return None
    return CallerScope(parts[0], parts[1], parts[2], parts[3], token)


# ---------------------------------------------------------------------- control plane (moto's process)


def _document(policy: Any) -> dict[str, Any]:
    """A policy document from what moto's IAM keeps: a managed Policy (its default version), JSON text, or a dict."""
    from moto.iam.models import Policy

    if isinstance(policy, Policy):
        policy = next(v for v in policy.versions if v.is_default).document
    elif isinstance(policy, dict):
        policy = policy["policy_document"]
    return dict(json.loads(policy) if isinstance(policy, str) else policy)


def _function_policy(account: str, region: str, function: str, qualifier: str | None) -> dict[str, Any] | None:
    """The function's resource-based policy, with moto's leftovers of AddPermission turned into conditions."""
    from moto.awslambda.utils import get_backend  # the simple backend when Docker is off, as in the control plane

    try:
        wire = json.loads(get_backend(account, region).get_policy(function, qualifier))
    except Exception:  # no function, or no statement yet
        return None
    policy: dict[str, Any] = json.loads(wire["Policy"])
    for statement in policy.get("Statement", []):
        conditions = statement.setdefault("Condition", {})
        if "FunctionUrlAuthType" in statement:  # AddPermission's FunctionUrlAuthType, as AWS stores it
            auth = statement.pop("FunctionUrlAuthType")
            conditions.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = auth
        if "InvokedViaFunctionUrl" in statement:
            via = str(statement.pop("InvokedViaFunctionUrl")).lower()
            conditions.setdefault("Bool", {})["lambda:InvokedViaFunctionUrl"] = via
    return policy


def describe_caller(request: dict[str, Any], account: str = ACCOUNT) -> dict[str, Any] | None:
    """The control plane's answer for one signed request's access key (None: unknown key or wrong token)."""
    from moto.iam.access_control import AssumedRoleAccessKey, CreateAccessKeyFailure, IAMUserAccessKey
    from moto.iam.models import iam_backends

    access_key, token = str(request["access_key"]), str(request.get("session_token") or "")
    try:
        if token:
            found: Any = AssumedRoleAccessKey(account, PARTITION, access_key, {"X-Amz-Security-Token": token})
            role_name = found._owner_role_name
            role = iam_backends[account][PARTITION].get_role(role_name)
            arns: list[str] = [found.arn, role.arn]
            user_id = f"{role.id}:{found._session_name}"
        else:
            found = IAMUserAccessKey(account, PARTITION, access_key, {})
            user = iam_backends[account][PARTITION].get_user(found._owner_user_name)
            arns, user_id = [found.arn], user.id
    except CreateAccessKeyFailure:
        return None
    key = signing_key(found._secret_access_key, str(request["date"]), str(request["region"]), str(request["service"]))
    function = request.get("function")
    resource_policy = (_function_policy(account, str(request["region"]), str(function), request.get("qualifier"))
                       if function else None)
    return {"arns": arns, "account": account, "user_id": user_id, "signing_key": key.hex(),
            "policies": [_document(p) for p in found.collect_policies()], "resource_policy": resource_policy}


def _route(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], bytes]:
    """moto's handler signature: (request, url, headers) -> (status, headers, body)."""
    answer_headers = {"Content-Type": "application/json"}
    try:
        asked = json.loads(request.get_data() or b"{}")
        answer = describe_caller(asked)
    except (ValueError, KeyError, TypeError) as exc:
        return 400, answer_headers, json.dumps({"message": f"bad caller request: {exc}"}).encode()
    if answer is None:
        return 404, answer_headers, json.dumps({"message": "The security token included in the request is "
                                                           "invalid."}).encode()
    return 200, answer_headers, json.dumps(answer).encode()


def install() -> None:
    """Add the route to moto's own API (before the server handles its first /moto-api request). Idempotent."""
    from moto.moto_api._internal import urls

    urls.url_paths["{0}" + ROUTE] = _route


# ---------------------------------------------------------------------- data plane (the gateway)


class CallerDirectory:
    """Asks the control plane at `control_url` who holds an access key (one HTTP call per signed request with a key
    that is not the emulator's own; nothing is cached, so IAM changes apply to the next request)."""

    def __init__(self, control_url: str, timeout: float = 10) -> None:
        self.url = control_url.rstrip("/") + ROUTE
        self.timeout = timeout
        self._client: Any = None  # one keep-alive client (plain HTTP on 127.0.0.1), made in the gateway's loop

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def lookup(self, scope: CallerScope, function: str | None = None,
                     qualifier: str | None = None) -> Identity | None:
        import httpx

        body = {"access_key": scope.access_key, "session_token": scope.session_token, "date": scope.date,
                "region": scope.region, "service": scope.service, "function": function, "qualifier": qualifier}
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, verify=False)  # http://127.0.0.1 only
        try:
            reply = await self._client.post(self.url, json=body)
            if reply.status_code == 404:
                return None
            reply.raise_for_status()
            found = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise CallerLookupError(f"the control plane at {self.url} could not say who holds access key "
                                    f"{scope.access_key}: {exc}") from None
        return Identity(access_key=scope.access_key, arns=tuple(found["arns"]), account_id=found["account"],
                        user_id=found["user_id"], signing_key=bytes.fromhex(found["signing_key"]),
                        policies=tuple(found["policies"]), resource_policy=found.get("resource_policy"))
