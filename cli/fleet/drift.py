"""Whether what runs differs from the folder: the deployed image (its digest, read from the stack's template)
against the image the folder builds to now, and, for Lambda, the function's memory, timeout, /tmp size and
architecture against the folder's mlfn.toml.

The image's digest covers every file of the model folder (model, hooks, requirements, mlfn.toml), so any edit
shows as `image`; a settings row says which setting moved even when the image did not.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mlfn.runtime.spec import ModelSpec

DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})")


def folder_digest(spec: ModelSpec, base: str | None = None) -> str:
    """The digest `mlfn deploy` would push for this folder now (the image is built, offline, not pushed)."""
    from ..packaging import base as bases
    from ..packaging.model_image import build_model_image

    resolved = bases.resolve_base(bases.flavour_for(spec), base)
    return str(build_model_image(spec, resolved, bases.images_home() / spec.name).digest)


def deployed_digests(cfn: Any, stack_name: str) -> set[str]:
    """Image digests the live stack's template refers to (mlfn deploys images by digest)."""
    body = cfn.get_template(StackName=stack_name, TemplateStage="Original").get("TemplateBody", "")
    text = body if isinstance(body, str) else json.dumps(body)
    return set(DIGEST.findall(text))


def lambda_settings(lam: Any, outputs: dict[str, str], spec: ModelSpec) -> list[str]:
    """`memory 1024 -> 2048`-style differences between the live function and the folder's [lambda] settings."""
    name = outputs.get("FunctionName")
    if outputs.get("Target") != "lambda" or not name:
        return []
    config = lam.get_function_configuration(FunctionName=name, Qualifier=outputs.get("AliasName", "live"))
    want = spec.settings.lambda_
    pairs = [("memory", config.get("MemorySize"), want.memory_mb), ("timeout", config.get("Timeout"), want.timeout_s),
             ("ephemeral storage", (config.get("EphemeralStorage") or {}).get("Size"), want.ephemeral_storage_mb),
             ("architecture", (config.get("Architectures") or [None])[0], want.architecture)]
    return [f"{what} {have} -> {wanted}" for what, have, wanted in pairs if have is not None and have != wanted]


def drift(session: Any, stack_name: str, outputs: dict[str, str], spec: ModelSpec, digest: str,
          target: str) -> list[str]:
    """Each way the deployed model differs from its folder (empty: none)."""
    found = []
    deployed = deployed_digests(session.client("cloudformation"), stack_name)
    if digest not in deployed:
        old = ", ".join(sorted(d[:19] for d in deployed)) or "none"
        found.append(f"image {old} -> {digest[:19]}")
    if outputs.get("Target") and outputs["Target"] != target:
        found.append(f"target {outputs['Target']} -> {target}")
    if target == "lambda":
        found.extend(lambda_settings(session.client("lambda"), outputs, spec))
    return found
