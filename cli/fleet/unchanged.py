"""Skip the change set of a stack that already holds exactly what would be submitted.

A change set compares what is submitted (template, parameters, tags) with the stack; when all are equal
CloudFormation creates no changes ("The submitted information didn't contain changes"). Asking costs a change set
created, polled and deleted per model; on a fleet's no-op redeploy this check (two read calls) answers the same.
Only a stack at rest after success (CREATE_COMPLETE, UPDATE_COMPLETE) and without parameters is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

AT_REST = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})


def unchanged_stack(template: Any, stack_name: str, session: Any, tags: Mapping[str, str] | None) -> Any:
    """The NO_CHANGES DeployResult when the live stack matches `template` and `tags`, else None (deploy it)."""
    from ..aws.cloudformation import DeployResult, describe_stack, outputs_of

    if not isinstance(template, Path):
        return None
    cfn = session.client("cloudformation")
    stack = describe_stack(cfn, stack_name)
    if not stack or stack["StackStatus"] not in AT_REST or stack.get("Parameters"):
        return None
    if {t["Key"]: t["Value"] for t in stack.get("Tags") or []} != {k: str(v) for k, v in (tags or {}).items()}:
        return None
    body = cfn.get_template(StackName=stack_name, TemplateStage="Original").get("TemplateBody", "")
    try:
        deployed = json.loads(body) if isinstance(body, str) else body
        wanted = json.loads(template.read_text())
    except ValueError:
        return None
    if deployed != wanted:
        return None
    return DeployResult(stack_name=stack_name, stack_id=str(stack.get("StackId", "")), status="NO_CHANGES",
                        outputs=outputs_of(stack))
