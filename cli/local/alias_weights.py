"""A Lambda alias's routing as AWS defines it, for whoever picks the version an alias call runs on.

An alias points at one version (`FunctionVersion`) and may send a share of its calls to ONE other version:
`RoutingConfig.AdditionalVersionWeights` maps that version to a weight from 0.0 to 1.0; the rest goes to the
alias's own version ("AliasRoutingConfiguration" in the Lambda API Reference; AWS::Lambda::Alias: "Use the
RoutingConfig parameter to specify a second version"). The data plane routes each request by `choose`; the
rollout engine (`cli/local/codedeploy.py`) writes the weights through UpdateAlias.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any


class RoutingError(ValueError):
    """A RoutingConfig AWS would refuse."""


def additional_weights(alias: Mapping[str, Any]) -> dict[str, float]:
    """`{version: weight}` of an alias description (GetAlias/UpdateAlias answer or moto's record)."""
    routing = alias.get("RoutingConfig") or {}
    return {str(v): float(w) for v, w in (routing.get("AdditionalVersionWeights") or {}).items()}


def check_routing(function_version: str, weights: Mapping[str, float]) -> None:
    """Refuse what the API refuses: more than one additional version, a weight outside 0..1, a non-numeric
    version key (pattern `[0-9]+`), or the alias's own version as the additional one."""
    if len(weights) > 1:
        raise RoutingError(f"an alias routes to at most one additional version, got {sorted(weights)}")
    for version, weight in weights.items():
        if not str(version).isdigit():
            raise RoutingError(f"additional version must be a published version number, got {version!r}")
        if not 0.0 <= float(weight) <= 1.0:
            raise RoutingError(f"weight of version {version} must be from 0.0 to 1.0, got {weight}")
        if str(version) == str(function_version):
            raise RoutingError(f"version {version} is already the alias's own version")


def choose(own: str, weights: Mapping[str, float], draw: float | None = None) -> str:
    """The version one call runs on: each additional version with its weight's probability, else `own`."""
    point = random.random() if draw is None else draw
    for version, weight in weights.items():
        if point < weight:
            return str(version)
        point -= weight
    return own


def pick_version(alias: Mapping[str, Any], draw: float | None = None) -> str:
    """The version one call through `alias` (a GetAlias answer) runs on."""
    return choose(str(alias["FunctionVersion"]), additional_weights(alias), draw)
