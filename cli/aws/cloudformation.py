"""Deploy a CloudFormation template through a change set, and wait for it with one callback per resource event.

    result = deploy(template_path, "mlfn-iris-dev", session=session, on_event=print_event, on_note=info)
    result.status   # "CREATED" | "UPDATED" | "NO_CHANGES"
    result.outputs  # {"InvokeUrl": "https://...", ...}

What it handles, as AWS behaves:
- a new stack gets a CREATE change set, an existing one an UPDATE change set; an empty change set is deleted and
  reported as NO_CHANGES;
- a stack left in ROLLBACK_COMPLETE by a failed first deploy (it can only be deleted) is deleted, then created again;
  a stack left in REVIEW_IN_PROGRESS (a deploy interrupted before executing) gets a new CREATE change set;
- a stack still *_IN_PROGRESS (a deploy interrupted with Ctrl-C, or running elsewhere) is waited for first;
- a failure raises `DeployError` carrying the first failing resource's own reason (not CloudFormation's summary);
  a failed update leaves UPDATE_ROLLBACK_COMPLETE: the previous version keeps serving;
- templates over 51,200 bytes go through S3 (bucket `mlfn-templates-<account>-<region>`, created when missing).
Waiting is bounded by `timeout_s`; polling starts at a quarter second and backs off to five.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..console import CliError

MAX_TEMPLATE_BODY = 51_200
CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND")
NO_CHANGE_MARKERS = ("didn't contain changes", "No updates are to be performed")
CASCADE_REASONS = ("Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled")
CHANGE_SET_PREFIX = "mlfn-"
GOOD_END = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE"}
STUCK = {"ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "IMPORT_ROLLBACK_FAILED"}


@dataclass(frozen=True)
class StackEvent:
    """One resource (or the stack itself) changing status."""

    logical_id: str
    resource_type: str
    status: str
    reason: str
    physical_id: str
    timestamp: datetime | None

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")

    def line(self) -> str:
        """One progress line for a person: `  CREATE_COMPLETE      Fn (AWS::Lambda::Function)  reason`."""
        text = f"  {self.status:<20} {self.logical_id} ({self.resource_type})"
        return f"{text}  {self.reason}" if self.reason and self.reason != "User Initiated" else text


@dataclass
class DeployResult:
    stack_name: str
    stack_id: str
    status: str  # CREATED | UPDATED | NO_CHANGES | STARTED (an update executing, not waited for)
    outputs: dict[str, str]
    changes: list[dict[str, str]] = field(default_factory=list)  # {"action", "logical_id", "resource_type"}
    seconds: float = 0.0


class DeployError(CliError):
    """A deploy that did not complete; `reason` is the first failing resource's own reason."""

    def __init__(
        self, message: str, *, stack_name: str, status: str = "", resource: str = "", resource_type: str = "",
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.stack_name, self.status = stack_name, status
        self.resource, self.resource_type, self.reason = resource, resource_type, reason


EventCallback = Callable[[StackEvent], None]
NoteCallback = Callable[[str], None]


def _quiet(_: Any) -> None:
    return None


class _Poll:
    """Backing-off sleeps within a deadline."""

    def __init__(self, timeout_s: float, what: str, stack_name: str) -> None:
        self.deadline = time.monotonic() + timeout_s
        self.delay = 0.25
        self.timeout_s, self.what, self.stack_name = timeout_s, what, stack_name

    def sleep(self, status: str = "") -> None:
        if time.monotonic() >= self.deadline:
            raise DeployError(
                f"{self.stack_name}: gave up after {self.timeout_s:.0f}s waiting for {self.what}"
                + (f" (still {status}; run the command again to keep waiting)" if status else ""),
                stack_name=self.stack_name, status=status,
            )
        time.sleep(min(self.delay, max(0.0, self.deadline - time.monotonic())))
        self.delay = min(self.delay * 2, 5.0)


def _error_code(exc: Exception) -> tuple[str, str]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", exc))


def describe_stack(cfn: Any, stack_name: str) -> dict[str, Any] | None:
    """The stack's description, or None when no live stack has that name."""
    import botocore.exceptions

    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except botocore.exceptions.ClientError as exc:
        code, message = _error_code(exc)
        if code == "ValidationError" and "does not exist" in message:
            return None
        raise
    return stacks[0] if stacks else None


def outputs_of(stack: Mapping[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}


def list_stacks(session: Any, prefix: str = "mlfn-") -> list[dict[str, Any]]:
    """Live stacks whose name starts with `prefix`: name, status, last change and outputs (for `mlfn list`)."""
    cfn = session.client("cloudformation")
    found = []
    for page in cfn.get_paginator("describe_stacks").paginate():
        for stack in page.get("Stacks", []):
            if stack["StackName"].startswith(prefix):
                found.append({
                    "name": stack["StackName"],
                    "status": stack["StackStatus"],
                    "updated": stack.get("LastUpdatedTime") or stack.get("CreationTime"),
                    "outputs": outputs_of(stack),
                })
    return sorted(found, key=lambda s: s["name"])


def stack_outputs(session: Any, stack_name: str) -> dict[str, str]:
    """The outputs of a live stack ({} when it does not exist)."""
    stack = describe_stack(session.client("cloudformation"), stack_name)
    return outputs_of(stack) if stack else {}


class _EventStream:
    """New stack events, oldest first, each reported once; remembers the first failure."""

    def __init__(self, cfn: Any, stack_id: str, on_event: EventCallback) -> None:
        self.cfn, self.stack_id, self.on_event = cfn, stack_id, on_event
        self.seen: set[str] = set()
        self.first_failure: StackEvent | None = None
        self.stack_reason = ""
        for raw in self._page():
            self.seen.add(raw["EventId"])

    def _page(self) -> list[dict[str, Any]]:
        return list(self.cfn.describe_stack_events(StackName=self.stack_id).get("StackEvents", []))

    def pump(self) -> None:
        fresh = [raw for raw in self._page() if raw["EventId"] not in self.seen]
        for raw in reversed(fresh):  # the API gives newest first
            self.seen.add(raw["EventId"])
            event = StackEvent(
                logical_id=raw.get("LogicalResourceId", ""),
                resource_type=raw.get("ResourceType", ""),
                status=raw.get("ResourceStatus", ""),
                reason=raw.get("ResourceStatusReason") or "",
                physical_id=raw.get("PhysicalResourceId") or "",
                timestamp=raw.get("Timestamp"),
            )
            is_stack = event.resource_type == "AWS::CloudFormation::Stack"
            if event.failed and not is_stack and self.first_failure is None and not event.reason.startswith(
                CASCADE_REASONS
            ):
                self.first_failure = event
            if is_stack and event.reason and event.status.endswith(("_FAILED", "ROLLBACK_IN_PROGRESS")):
                self.stack_reason = self.stack_reason or event.reason
            self.on_event(event)


def wait_for_stack(
    cfn: Any, stack_id: str, stack_name: str, *, on_event: EventCallback = _quiet, timeout_s: float = 3600,
    what: str = "the stack", events: _EventStream | None = None,
) -> tuple[dict[str, Any], _EventStream]:
    """Poll until the stack leaves every *_IN_PROGRESS state; returns its description and the event stream."""
    stream = events or _EventStream(cfn, stack_id, on_event)
    poll = _Poll(timeout_s, what, stack_name)
    while True:
        stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
        stream.pump()
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS") or status == "REVIEW_IN_PROGRESS":
            return stack, stream
        poll.sleep(status)


def _template_body(template: str | Path | Mapping[str, Any]) -> str:
    if isinstance(template, Mapping):
        return json.dumps(template, separators=(",", ":"))
    if isinstance(template, Path):
        return template.read_text()
    if not template.lstrip().startswith(("{", "AWSTemplateFormatVersion", "Resources", "---")) and Path(
        template
    ).is_file():
        return Path(template).read_text()
    return template


def _template_argument(session: Any, body: str, stack_name: str, on_note: NoteCallback) -> dict[str, str]:
    """TemplateBody, or TemplateURL after uploading a template too large to pass inline."""
    if len(body.encode()) <= MAX_TEMPLATE_BODY:
        return {"TemplateBody": body}
    import botocore.exceptions

    from .session import account_id

    region = session.region_name
    bucket = f"mlfn-templates-{account_id(session)}-{region}"
    s3 = session.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError:
        on_note(f"creating S3 bucket {bucket} for templates over {MAX_TEMPLATE_BODY} bytes")
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
    key = f"templates/{stack_name}/{hashlib.sha256(body.encode()).hexdigest()}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ServerSideEncryption="AES256")
    return {"TemplateURL": f"https://{bucket}.s3.{region}.{_dns_suffix(session, region)}/{key}"}


def _dns_suffix(session: Any, region: str) -> str:
    """The domain of the region's partition: amazonaws.com, amazonaws.com.cn in China (botocore's endpoint data)."""
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    resolver = EndpointResolver(create_loader().load_data("endpoints"))
    return str(resolver.get_partition_dns_suffix(session.get_partition_for_region(region)))


def _delete_stale_change_sets(cfn: Any, stack_name: str) -> None:
    """Change sets an interrupted mlfn deploy left behind (never executed)."""
    import botocore.exceptions

    try:
        summaries = cfn.list_change_sets(StackName=stack_name).get("Summaries", [])
    except botocore.exceptions.ClientError:
        return
    for summary in summaries:
        if summary.get("ChangeSetName", "").startswith(CHANGE_SET_PREFIX) and summary.get("StackName") == stack_name:
            cfn.delete_change_set(ChangeSetName=summary["ChangeSetId"])


def _prepare_stack(cfn: Any, stack_name: str, on_event: EventCallback, on_note: NoteCallback, timeout_s: float
                   ) -> dict[str, Any] | None:
    """The live stack to update (None: create one), after waiting out or clearing what an earlier deploy left."""
    for _ in range(3):
        stack = describe_stack(cfn, stack_name)
        if stack is None:
            return None
        status = stack["StackStatus"]
        if status == "REVIEW_IN_PROGRESS":
            _delete_stale_change_sets(cfn, stack_name)
            return None
        if status.endswith("_IN_PROGRESS"):
            on_note(f"{stack_name} is {status} (an earlier deploy); waiting for it to finish")
            wait_for_stack(cfn, stack["StackId"], stack_name, on_event=on_event, timeout_s=timeout_s,
                           what="an earlier operation")
            continue
        if status == "ROLLBACK_COMPLETE":
            on_note(f"{stack_name} was rolled back when first created and can only be deleted; deleting it first")
            cfn.delete_stack(StackName=stack["StackId"])
            wait_for_stack(cfn, stack["StackId"], stack_name, on_event=on_event, timeout_s=timeout_s,
                           what="the failed stack's deletion")
            continue
        if status in STUCK:
            hint = {
                "UPDATE_ROLLBACK_FAILED": "fix the cause, then `aws cloudformation continue-update-rollback "
                                          f"--stack-name {stack_name}`",
                "DELETE_FAILED": f"delete it again (`mlfn destroy`) after fixing: {stack.get('StackStatusReason', '')}",
            }.get(status, f"delete the stack ({stack_name}) and deploy again")
            raise DeployError(f"{stack_name} is {status} and cannot be deployed to: {hint}",
                              stack_name=stack_name, status=status)
        _delete_stale_change_sets(cfn, stack_name)
        return stack
    raise DeployError(f"{stack_name} keeps changing state; try again", stack_name=stack_name)


def _wait_for_change_set(cfn: Any, change_set_id: str, stack_name: str, timeout_s: float) -> dict[str, Any]:
    poll = _Poll(timeout_s, "the change set", stack_name)
    while True:
        change_set = cfn.describe_change_set(ChangeSetName=change_set_id)
        if change_set["Status"] in ("CREATE_COMPLETE", "FAILED", "DELETE_COMPLETE"):
            return dict(change_set)
        poll.sleep(change_set["Status"])


def _changes(change_set: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for change in change_set.get("Changes") or []:
        rc = change.get("ResourceChange") or {}
        out.append({"action": rc.get("Action", ""), "logical_id": rc.get("LogicalResourceId", ""),
                    "resource_type": rc.get("ResourceType", "")})
    return out


def _failure(stack_name: str, stack: Mapping[str, Any], stream: _EventStream, creating: bool) -> DeployError:
    status = stack["StackStatus"]
    first = stream.first_failure
    if creating:
        after = "rolled back; nothing was left running (the next deploy starts afresh)"
    else:
        after = "rolled back; the previous version keeps serving"
    if status in STUCK:
        after = f"and the stack is {status}: it needs attention before the next deploy"
    if first is not None:
        message = f"{stack_name}: {first.logical_id} ({first.resource_type}) {first.status}: {first.reason} -- {after}"
        return DeployError(message, stack_name=stack_name, status=status, resource=first.logical_id,
                           resource_type=first.resource_type, reason=first.reason)
    reason = stream.stack_reason or stack.get("StackStatusReason") or status
    return DeployError(f"{stack_name}: {status}: {reason} -- {after}", stack_name=stack_name, status=status,
                       reason=reason)


def deploy(
    template: str | Path | Mapping[str, Any],
    stack_name: str,
    *,
    session: Any,
    parameters: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    on_event: EventCallback | None = None,
    on_note: NoteCallback | None = None,
    timeout_s: float = 3600,
    capabilities: tuple[str, ...] = CAPABILITIES,
    description: str = "mlfn deploy",
    wait: bool = True,
) -> DeployResult:
    """Create or update `stack_name` from `template` (a body, a path, or a dict) through a change set.

    `on_event` is called once per new stack event (resource or stack), oldest first; `on_note` with a line for a
    person when the deploy has to wait for or clean up after an earlier one. Raises DeployError on failure.
    `wait=False` (an update only): return STARTED once the change set executes, with the stack's current outputs;
    CloudFormation finishes the update (and any CodeDeploy deployment it waits for) without this process.
    """
    emit, note = on_event or _quiet, on_note or _quiet
    started = time.monotonic()
    cfn = session.client("cloudformation")
    body = _template_body(template)
    existing = _prepare_stack(cfn, stack_name, emit, note, timeout_s)
    creating = existing is None
    request: dict[str, Any] = {
        "StackName": stack_name,
        "ChangeSetName": f"{CHANGE_SET_PREFIX}{datetime.now():%Y%m%d-%H%M%S-%f}",
        "ChangeSetType": "CREATE" if creating else "UPDATE",
        "Capabilities": list(capabilities),
        "Parameters": [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in (parameters or {}).items()],
        "Tags": [{"Key": k, "Value": str(v)} for k, v in (tags or {}).items()],
        "Description": description,
        **_template_argument(session, body, stack_name, note),
    }
    import botocore.exceptions

    try:
        created = cfn.create_change_set(**request)
    except botocore.exceptions.ClientError as exc:
        _, message = _error_code(exc)
        if not creating and any(marker in message for marker in NO_CHANGE_MARKERS):
            return _no_changes(existing, stack_name, started)
        raise DeployError(f"{stack_name}: CloudFormation refused the template: {message}", stack_name=stack_name,
                          reason=message) from None
    change_set_id, stack_id = created["Id"], created["StackId"]
    change_set = _wait_for_change_set(cfn, change_set_id, stack_name, timeout_s)
    if change_set["Status"] == "FAILED":
        reason = change_set.get("StatusReason") or "the change set failed"
        cfn.delete_change_set(ChangeSetName=change_set_id)
        if not creating and any(marker in reason for marker in NO_CHANGE_MARKERS):
            return _no_changes(existing, stack_name, started)
        if creating:
            cfn.delete_stack(StackName=stack_id)  # the empty REVIEW_IN_PROGRESS stack
        raise DeployError(f"{stack_name}: the change set failed: {reason}", stack_name=stack_name, reason=reason)
    stream = _EventStream(cfn, stack_id, emit)
    cfn.execute_change_set(ChangeSetName=change_set_id)
    if not wait and not creating:
        return DeployResult(stack_name=stack_name, stack_id=stack_id, status="STARTED",
                            outputs=outputs_of(existing or {}), changes=_changes(change_set),
                            seconds=time.monotonic() - started)
    stack, stream = wait_for_stack(cfn, stack_id, stack_name, on_event=emit, timeout_s=timeout_s, events=stream,
                                   what="the deploy")
    if stack["StackStatus"] not in GOOD_END:
        raise _failure(stack_name, stack, stream, creating)
    return DeployResult(
        stack_name=stack_name, stack_id=stack_id, status="CREATED" if creating else "UPDATED",
        outputs=outputs_of(stack), changes=_changes(change_set), seconds=time.monotonic() - started,
    )


def _no_changes(stack: Mapping[str, Any] | None, stack_name: str, started: float) -> DeployResult:
    stack = stack or {}
    return DeployResult(stack_name=stack_name, stack_id=str(stack.get("StackId", "")), status="NO_CHANGES",
                        outputs=outputs_of(stack), seconds=time.monotonic() - started)


def destroy(
    stack_name: str,
    *,
    session: Any,
    wait: bool = True,
    on_event: EventCallback | None = None,
    timeout_s: float = 3600,
) -> bool:
    """Delete `stack_name`; False when there was no such stack. With `wait`, raise DeployError unless it is gone."""
    cfn = session.client("cloudformation")
    stack = describe_stack(cfn, stack_name)
    if stack is None:
        return False
    stack_id = stack["StackId"]
    emit = on_event or _quiet
    if stack["StackStatus"].endswith("_IN_PROGRESS") and stack["StackStatus"] != "REVIEW_IN_PROGRESS":
        stack, _ = wait_for_stack(cfn, stack_id, stack_name, on_event=emit, timeout_s=timeout_s,
                                  what="an earlier operation")
    stream = _EventStream(cfn, stack_id, emit)
    cfn.delete_stack(StackName=stack_id)
    if not wait:
        return True
    stack, stream = wait_for_stack(cfn, stack_id, stack_name, on_event=emit, timeout_s=timeout_s, events=stream,
                                   what="the deletion")
    if stack["StackStatus"] != "DELETE_COMPLETE":
        first = stream.first_failure
        reason = first.reason if first else stream.stack_reason or stack.get("StackStatusReason", "")
        where = f"{first.logical_id} ({first.resource_type}): " if first else ""
        raise DeployError(f"{stack_name}: {stack['StackStatus']}: {where}{reason}", stack_name=stack_name,
                          status=stack["StackStatus"], resource=first.logical_id if first else "", reason=reason)
    return True


KEPT_BY_POLICY = ("Retain", "RetainExceptOnCreate")


def fixed_name_log_groups(session: Any, stack_name: str) -> list[str]:
    """The stack's log groups with a fixed name that its DeletionPolicy keeps when the stack is deleted.

    Left behind, each would make the next create of the same stack fail "already exists" (SageMaker logs to fixed
    names, `/aws/sagemaker/Endpoints/<endpoint>`). Read before the stack is deleted.
    """
    body = session.client("cloudformation").get_template(StackName=stack_name)["TemplateBody"]
    template = body if isinstance(body, Mapping) else json.loads(body)
    return [
        resource["Properties"]["LogGroupName"] for resource in (template.get("Resources") or {}).values()
        if resource.get("Type") == "AWS::Logs::LogGroup" and resource.get("DeletionPolicy") in KEPT_BY_POLICY
        and isinstance((resource.get("Properties") or {}).get("LogGroupName"), str)
    ]


def delete_log_groups(session: Any, names: list[str]) -> list[str]:
    """Delete these log groups; the ones that were there (a missing group is no error)."""
    import botocore.exceptions

    logs, deleted = session.client("logs"), []
    for name in names:
        try:
            logs.delete_log_group(logGroupName=name)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc)[0] != "ResourceNotFoundException":
                raise
        else:
            deleted.append(name)
    return deleted
