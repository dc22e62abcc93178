"""A small IAM policy evaluator: what the emulator's gateway needs to authorize a Function URL caller.

Same-account evaluation as AWS documents it ("Policy evaluation logic"): an explicit Deny in any policy wins; else
an Allow in an identity-based policy *or* in the resource-based policy (whose statement names the caller) allows;
else the request is implicitly denied.

Evaluated: `Effect` Allow/Deny; `Action`/`NotAction` (case-insensitive, `*` and `?` wildcards); `Resource`/
`NotResource` (wildcards); `Principal` of resource-based statements (`*`, `{"AWS": "*"}`, or the caller's exact
ARN; an account principal does not name an IAM user or role by itself); `Condition` with `StringEquals`,
`StringNotEquals`, `StringEqualsIgnoreCase`, `StringLike`, `StringNotLike`, `ArnEquals`, `ArnLike`, `Bool`, each
with `...IfExists`, over the request's context keys (names case-insensitive, several values per key: any may
match). Not evaluated (a statement using them never matches, so an Allow does not allow and a Deny does not deny):
other operators (numeric, date, IP address, `Null`), `ForAllValues:`/`ForAnyValue:`, `NotPrincipal`, policy
variables (`${aws:username}`), permissions boundaries, session policies, SCPs and RCPs, cross-account rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any

Policy = Mapping[str, Any]


class Decision(Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Request:
    """One action on one resource by one principal (its ARNs: an assumed-role session and its role), with the
    request's condition context."""

    principal_arns: tuple[str, ...]
    action: str
    resource: str
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)


@lru_cache(maxsize=512)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    # IAM wildcards: * any run, ? one character; nothing else is special
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    return bool(_pattern(glob, ignore_case).match(value))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _element_matches(statement: Policy, positive: str, negative: str, value: str, ignore_case: bool) -> bool:
    if negative in statement:
        return not any(matches(str(g), value, ignore_case=ignore_case) for g in _as_list(statement[negative]))
    return any(matches(str(g), value, ignore_case=ignore_case) for g in _as_list(statement.get(positive)))


def _names_principal(statement: Policy, principal_arns: Sequence[str]) -> bool:
    """Whether a resource-based statement's `Principal` names the caller."""
    principal = statement.get("Principal")
    if principal == "*":
        return True
    values = _as_list(principal.get("AWS")) if isinstance(principal, Mapping) else _as_list(principal)
    return any(v == "*" or v in principal_arns for v in values)


_STRING_OPS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda want, have: want == have,
    "StringNotEquals": lambda want, have: want == have,
    "StringEqualsIgnoreCase": lambda want, have: want.lower() == have.lower(),
    "StringLike": lambda want, have: matches(want, have),
    "StringNotLike": lambda want, have: matches(want, have),
    "ArnEquals": lambda want, have: want == have,
    "ArnLike": lambda want, have: matches(want, have),
    "Bool": lambda want, have: want.lower() == have.lower(),
}
_NEGATED = {"StringNotEquals", "StringNotLike"}


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, Sequence[str]]) -> bool | None:
    """True/False, or None for an operator this evaluator does not know."""
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    compare = _STRING_OPS.get(base)
    if compare is None:
        return None
    have = context.get(key.lower())
    if have is None:  # a missing key: only negated operators (and ...IfExists) hold
        return if_exists or base in _NEGATED
    wants = [str(w) for w in _as_list(wanted)]
    hit = any(compare(w, h) for w in wants for h in have)
    return not hit if base in _NEGATED else hit


def _conditions_hold(statement: Policy, context: Mapping[str, Sequence[str]]) -> bool:
    for operator, pairs in (statement.get("Condition") or {}).items():
        for key, wanted in (pairs or {}).items():
            if not _condition_holds(operator, key, wanted, context):
                return False  # unknown operators (None) never hold
    return True


def _statement_applies(statement: Policy, request: Request, context: Mapping[str, Sequence[str]],
                       resource_based: bool) -> bool:
    if resource_based and not _names_principal(statement, request.principal_arns):
        return False
    if not _element_matches(statement, "Action", "NotAction", request.action, ignore_case=True):
        return False
    if "Resource" in statement or "NotResource" in statement:
        if not _element_matches(statement, "Resource", "NotResource", request.resource, ignore_case=False):
            return False
    elif not resource_based:
        return False  # an identity-based statement must name its resources
    return _conditions_hold(statement, context)


def _statements(policy: Policy) -> Iterable[Policy]:
    return [s for s in _as_list(policy.get("Statement")) if isinstance(s, Mapping)]


def evaluate(request: Request, identity_policies: Sequence[Policy], resource_policy: Policy | None = None) -> Decision:
    """The decision for `request` (caller and resource in the same account)."""
    context = {k.lower(): [str(v) for v in _as_list(vals)] for k, vals in request.context.items()}
    allowed = False
    sources = [(p, False) for p in identity_policies] + ([(resource_policy, True)] if resource_policy else [])
    for policy, resource_based in sources:
        for statement in _statements(policy):
            if not _statement_applies(statement, request, context, resource_based):
                continue
            if statement.get("Effect") == "Deny":
                return Decision.EXPLICIT_DENY
            allowed = allowed or statement.get("Effect") == "Allow"
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


__all__ = ["Decision", "Request", "evaluate", "matches"]
