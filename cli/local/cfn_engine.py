"""CloudFormation semantics moto leaves out, added to its backend: per-resource stack events, failure with rollback,
and change sets that behave as in AWS.

moto 5.2 executes a change set in the request that asks for it, records only stack-level events and, when a
resource fails, leaves the stack half-made with a 500. The emulator:
- executes change sets and deletions in the background as AWS does (one at a time; `SETTINGS.asynchronous`), so
  callers poll through *_IN_PROGRESS and see each resource's events as they happen;
- emits `<RESOURCE>_IN_PROGRESS / _COMPLETE / _FAILED` events with each resource's own reason, and for resource
  types it only records (`cfn_generic`) says so in the reason;
- on a failed CREATE deletes what was made (ROLLBACK_IN_PROGRESS -> ROLLBACK_COMPLETE; such a stack can only be
  deleted); on a failed UPDATE applies the previous template again (UPDATE_ROLLBACK_IN_PROGRESS ->
  UPDATE_ROLLBACK_COMPLETE), so the previous version keeps serving;
- honours DeletionPolicy: `Retain` keeps a resource on stack deletion, on removal by an update and on rollback;
  `RetainExceptOnCreate` keeps it likewise except when rolling back the operation that created it (DELETE_SKIPPED
  events for what is kept);
- replaces resources whose moto model cannot update in place (moto would drop them from the stack);
- refreshes outputs and parameters after a change set (moto keeps the empty outputs of a change-set-created stack);
- reuses a REVIEW_IN_PROGRESS stack for a new CREATE change set and refuses CREATE/UPDATE change sets in the states
  AWS refuses them, with AWS's messages.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import CloudFormationBackend, Event, Stack

from .cfn_deleters import DELETERS
from .cfn_generic import GenericResource

log = logging.getLogger("mlfn.local")
_local = threading.local()
_work_lock = threading.RLock()  # one stack operation at a time, as moto's backends have no locks of their own


@dataclass
class EngineSettings:
    """`asynchronous`: execute change sets and deletions after the API call returns, as AWS does (the caller polls
    and sees *_IN_PROGRESS and each resource's events as they happen); `resource_delay_s`: a pause per resource, so
    tests and demos can watch or interrupt a deploy in progress."""

    asynchronous: bool = True
    resource_delay_s: float = 0.0


SETTINGS = EngineSettings()


def _in_background(work: Any) -> None:
    def run() -> None:
        with _work_lock:
            work()

    if SETTINGS.asynchronous:
        threading.Thread(target=run, name="mlfn-cloudformation", daemon=True).start()
    else:
        run()


def _pause() -> None:
    if SETTINGS.resource_delay_s > 0:
        time.sleep(SETTINGS.resource_delay_s)


@dataclass
class Execution:
    """What one change-set execution has seen so far."""

    stack: Stack
    action: str  # CREATE | UPDATE | DELETE
    failures: dict[str, str] = field(default_factory=dict)  # logical id -> reason, first failure first
    started: set[str] = field(default_factory=set)


def _current() -> Execution | None:
    return getattr(_local, "execution", None)


def reason_of(exc: BaseException) -> str:
    """The one-line reason an exception gives, as CloudFormation shows a resource's failure."""
    for attr in ("message", "description"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value and not value.lstrip().startswith("<"):
            return value
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def add_event(
    stack: Stack, logical_id: str, resource_type: str, status: str, reason: str | None = None, physical_id: str = ""
) -> None:
    stack.events.append(
        Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical_id,
            physical_resource_id=physical_id,
            resource_type=resource_type,
            resource_status=status,
            resource_status_reason=reason,
            resource_properties=None,
        )
    )


def _physical_id(resource: Any) -> str:
    value = getattr(resource, "physical_resource_id", None)
    return value if isinstance(value, str) else ""


def _complete_reason(resource: Any) -> str | None:
    return GenericResource.status_reason if isinstance(resource, GenericResource) else None


# ---- resource-level hooks (replace moto's module functions, which ResourceMap calls by global name) -----------------
def parse_and_create_resource(
    logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str, region_name: str
) -> Any:
    """moto's parse_and_create_resource with events: dependencies resolve first (emitting their own events)."""
    condition = resource_json.get("Condition")
    if condition and not resources_map.lazy_condition_map[condition]:
        return None
    execution = _current()
    resource_type = resource_json["Type"]
    try:
        parsed = parsing.parse_resource_and_generate_name(logical_id, resource_json, resources_map)
    except Exception as exc:
        if execution is not None and not execution.failures:
            execution.failures[logical_id] = reason_of(exc)
            add_event(execution.stack, logical_id, resource_type, "CREATE_FAILED", reason_of(exc))
        raise
    if not parsed:
        return None
    resource_class, resource_json, physical_name = parsed
    if execution is not None:
        add_event(execution.stack, logical_id, resource_type, "CREATE_IN_PROGRESS")
        _pause()
    try:
        resource = resource_class.create_from_cloudformation_json(
            physical_name, resource_json, account_id, region_name,
            LogicalId=logical_id, StackId=resources_map.stack_id, ResourceType=resource_type,
        )
    except Exception as exc:
        if execution is not None:
            execution.failures.setdefault(logical_id, reason_of(exc))
            add_event(execution.stack, logical_id, resource_type, "CREATE_FAILED", reason_of(exc))
        log.debug("creating %s failed:\n%s", logical_id, traceback.format_exc())
        raise
    resource.cf_resource_type = resource_type
    resource.logical_resource_id = logical_id
    if execution is not None:
        add_event(
            execution.stack, logical_id, resource_type, "CREATE_COMPLETE", _complete_reason(resource),
            _physical_id(resource),
        )
    return resource


def parse_and_update_resource(
    logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str, region_name: str
) -> Any:
    """moto's parse_and_update_resource with events; models that cannot update are replaced instead of dropped."""
    execution = _current()
    resource_type = resource_json["Type"]
    if execution is not None and logical_id not in execution.started:
        execution.started.add(logical_id)
        add_event(execution.stack, logical_id, resource_type, "UPDATE_IN_PROGRESS")
        _pause()
    try:
        parsed = parsing.parse_resource_and_generate_name(logical_id, resource_json, resources_map)
        if not parsed:
            return None
        resource_class, resource_json, new_name = parsed
        original = resources_map[logical_id]
        if hasattr(resource_class.update_from_cloudformation_json, "__isabstractmethod__"):
            resource = _replace(original, resource_class, resource_json, new_name, resources_map, account_id,
                                region_name)
        else:
            resource = resource_class.update_from_cloudformation_json(
                original_resource=original, new_resource_name=new_name, cloudformation_json=resource_json,
                account_id=account_id, region_name=region_name,
            )
    except Exception as exc:
        if execution is not None:
            execution.failures.setdefault(logical_id, reason_of(exc))
        raise
    if execution is not None:
        execution.failures.pop(logical_id, None)
        add_event(execution.stack, logical_id, resource_type, "UPDATE_COMPLETE", physical_id=_physical_id(resource))
    resource.cf_resource_type = resource_type
    resource.logical_resource_id = logical_id
    return resource


def _replace(
    original: Any, resource_class: Any, resource_json: dict[str, Any], new_name: str, resources_map: Any,
    account_id: str, region_name: str,
) -> Any:
    """Replacement, as CloudFormation does when a property cannot change in place (old one first: names may clash)."""
    if original is not None:
        resources_map._delete_resource(original, resources_map._resource_json_map.get(original.logical_resource_id)
                                       or resource_json)
    return resource_class.create_from_cloudformation_json(new_name, resource_json, account_id, region_name)


_moto_delete_resource = parsing.ResourceMap._delete_resource


def _delete_resource(self: Any, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
    execution = _current()
    logical_id = getattr(parsed_resource, "logical_resource_id", "")
    resource_type = resource_json.get("Type", "")
    if execution is not None:
        add_event(execution.stack, logical_id, resource_type, "DELETE_IN_PROGRESS", physical_id=_physical_id(
            parsed_resource))
    try:
        deleter = DELETERS.get(resource_type)
        if deleter is not None:
            deleter(parsed_resource, self._account_id, self._region_name)
        else:
            _moto_delete_resource(self, parsed_resource, resource_json)
    except Exception as exc:
        if execution is not None:
            add_event(execution.stack, logical_id, resource_type, "DELETE_FAILED", reason_of(exc))
        raise
    if execution is not None:
        add_event(execution.stack, logical_id, resource_type, "DELETE_COMPLETE", physical_id=_physical_id(
            parsed_resource))


def references(node: Any, names: set[str]) -> set[str]:
    """The resources `node` refers to through Ref, Fn::GetAtt, Fn::Sub or DependsOn."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found.update(re.findall(r"\$\{([^!}][^}.]*)", text if isinstance(text, str) else ""))
                found |= references(value, names)
            elif key == "DependsOn":
                found.update([value] if isinstance(value, str) else value)
            else:
                found |= references(value, names)
    elif isinstance(node, list):
        for item in node:
            found |= references(item, names)
    return found & names


def dependency_order(resources: dict[str, Any]) -> list[str]:
    """Logical ids with every resource after the ones it refers to (template order otherwise)."""
    names = set(resources)
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValidationError(message=f"Circular dependency between resources: {name}")
        state[name] = 1
        for dep in sorted(references(resources[name], names - {name})):
            visit(dep)
        state[name] = 2
        order.append(name)

    for name in resources:
        visit(name)
    return order


ROLLBACK_ACTIONS = ("ROLLBACK", "UPDATE_ROLLBACK")


def kept(resource_json: dict[str, Any]) -> bool:
    """Whether CloudFormation keeps this resource instead of deleting it in the operation running now.

    `Retain` always; `RetainExceptOnCreate` except on rollback, where the resources deleted are the ones the
    rolled-back operation created (a create's rollback deletes all it made; an update's, what it added).
    """
    policy = resource_json.get("DeletionPolicy")
    execution = _current()
    rolling_back = execution is not None and execution.action in ROLLBACK_ACTIONS
    return policy == "Retain" or (policy == "RetainExceptOnCreate" and not rolling_back)


def _skip_deletion(stack_resource: Any, logical_id: str, resource_json: dict[str, Any]) -> None:
    execution = _current()
    if execution is not None:
        add_event(execution.stack, logical_id, resource_json.get("Type", ""), "DELETE_SKIPPED",
                  physical_id=_physical_id(stack_resource))


def update(self: Any, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
    """ResourceMap.update as CloudFormation orders it: creates and updates in dependency order (a new Version after
    its function's update), then removals in reverse order as clean-up, keeping what the DeletionPolicy keeps."""
    diff = self.build_resource_diff(template, parameters)
    old_resources = self._resource_json_map
    self._template = template
    if parameters:
        self.input_parameters = parameters
    self.load_mapping()
    self.load_parameters()
    self.load_conditions()
    self._resource_json_map = template["Resources"]
    added, modified = set(diff["Add"]), set(diff["Modify"])
    for name in dependency_order(template["Resources"]):
        if name in added:
            _ = self[name]
        elif name in modified:
            changed = parsing.parse_and_update_resource(name, template["Resources"][name], self,
                                                        account_id=self._account_id, region_name=self._region_name)
            if changed is not None:
                self._parsed_resources[name] = changed
    removed = set(diff["Remove"])
    for name in reversed(dependency_order(old_resources)):
        if name not in removed or name not in self._parsed_resources:
            continue
        resource = self._parsed_resources.pop(name)
        if resource is None:
            continue
        if kept(old_resources[name]):
            _skip_deletion(resource, name, old_resources[name])
            continue
        try:
            self._delete_resource(resource, old_resources[name])
        except Exception as exc:
            log.warning("could not delete %s after the update: %s", name, reason_of(exc))


def delete(self: Any) -> None:
    """ResourceMap.delete in reverse dependency order (dependents first, as CloudFormation deletes), retrying what
    failed while anything else still goes; what the DeletionPolicy keeps is left alone."""
    resources = self._resource_json_map
    pending = []
    for name in reversed(dependency_order(resources)):
        resource = self._parsed_resources.get(name)
        if resource is None or isinstance(resource, str):
            continue
        if kept(resources[name]):
            _skip_deletion(resource, name, resources[name])  # stays parsed: moto would re-create a missing one
            continue
        pending.append(name)
    last: Exception | None = None
    while pending:
        failed = []
        for name in pending:
            try:
                self._delete_resource(self._parsed_resources[name], resources[name])
            except Exception as exc:
                failed.append(name)
                last = exc
            else:
                self._parsed_resources.pop(name, None)
        if len(failed) == len(pending):
            assert last is not None
            raise last
        pending = failed


# ---- stack-level operations ------------------------------------------------------------------------------------
def _run(stack: Stack, action: str, work: Any, execution: Execution | None = None) -> Execution:
    execution = execution or Execution(stack, action)
    _local.execution = execution
    try:
        work()
    finally:
        _local.execution = None
    return execution


def _refresh_outputs(stack: Stack) -> None:
    stack._parse_template()
    stack.description = stack.template_dict.get("Description")
    stack.output_map = stack._create_output_map()
    list(stack.output_map.values())  # resolve now, so a bad output fails the deploy, not a later describe


def _failure_summary(execution: Execution, exc: BaseException, verb: str) -> str:
    failed = list(execution.failures) or ["(template)"]
    return f"The following resource(s) failed to {verb}: [{', '.join(failed)}]. "


def execute_change_set(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
    change_set = self.describe_change_set(change_set_name)
    if change_set.execution_status != "AVAILABLE":
        raise ValidationError(
            change_set.change_set_id,
            message=f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current execution status of "
            f"[{change_set.execution_status}]",
        )
    stack = self.stacks[change_set.stack_id]
    creating = change_set.change_set_type == "CREATE"
    verb = "create" if creating else "update"
    previous = (stack.template, dict(stack.resource_map.input_parameters or {}))
    change_set.execution_status = "EXECUTE_IN_PROGRESS"
    stack.status = f"{change_set.change_set_type}_IN_PROGRESS"
    stack._add_stack_event(stack.status, resource_status_reason="User Initiated")

    def apply() -> None:
        change_set.apply()
        stack.template = change_set.template
        _refresh_outputs(stack)

    def execute() -> None:
        execution = Execution(stack, verb.upper())
        try:
            _run(stack, verb.upper(), apply, execution)
        except Exception as exc:
            _roll_back(self, stack, change_set, execution, exc, creating, previous)
            return
        change_set.execution_status = "EXECUTE_COMPLETE"
        stack.parameters = change_set.parameters
        stack.status = f"{change_set.change_set_type}_COMPLETE"
        stack._add_stack_event(stack.status)
        for export in stack.exports:
            self.exports[export.name] = export
        # AWS deletes a stack's other change sets once one is executed
        _drop_change_sets(self, stack.stack_id, keep=change_set)

    _in_background(execute)


def _roll_back(
    backend: CloudFormationBackend, stack: Stack, change_set: Any, execution: Execution, exc: BaseException,
    creating: bool, previous: tuple[Any, dict[str, Any]],
) -> None:
    verb = "create" if creating else "update"
    for logical_id, reason in execution.failures.items():
        if not creating and not any(
            e.logical_resource_id == logical_id and e.resource_status.endswith("_FAILED") for e in stack.events
        ):
            resource_type = (stack.resource_map._resource_json_map.get(logical_id) or {}).get("Type", "")
            add_event(stack, logical_id, resource_type, "UPDATE_FAILED", reason)
    if not execution.failures:
        reason = reason_of(exc)
        add_event(stack, stack.name, "AWS::CloudFormation::Stack", f"{verb.upper()}_FAILED", reason, stack.stack_id)
    summary = _failure_summary(execution, exc, verb)
    change_set.execution_status = "EXECUTE_FAILED"
    if creating:
        stack.status = "ROLLBACK_IN_PROGRESS"
        stack._add_stack_event(stack.status, resource_status_reason=summary + "Rollback requested by user.")
        _settle(stack, "ROLLBACK", stack.resource_map.delete, "ROLLBACK_COMPLETE", "ROLLBACK_FAILED")
        return
    stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
    stack._add_stack_event(stack.status, resource_status_reason=summary)
    template, parameters = previous

    def restore() -> None:
        stack.resource_map.update(Stack.parse_template(template), parameters)
        stack.template = template
        _refresh_outputs(stack)

    _settle(stack, "UPDATE_ROLLBACK", restore, "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED")


def _settle(stack: Stack, action: str, work: Any, done: str, failed: str) -> None:
    """Run a roll-back step and leave the stack in `done`, or in `failed` with the reason."""
    try:
        _run(stack, action, work)
    except Exception as exc:
        stack.status = failed
        stack._add_stack_event(failed, resource_status_reason=reason_of(exc))
        return
    stack.status = done
    stack._add_stack_event(done)


def _drop_change_sets(backend: CloudFormationBackend, stack_id: str, keep: Any = None) -> None:
    for cs in [c for c in backend.change_sets.values() if c.stack_id == stack_id and c is not keep]:
        backend.change_sets.pop(cs.change_set_id, None)


_moto_create_change_set = CloudFormationBackend.create_change_set

UPDATABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE",
             "IMPORT_ROLLBACK_COMPLETE"}


def create_change_set(self: CloudFormationBackend, stack_name: str, change_set_name: str, template: str,
                      parameters: dict[str, str], description: str, change_set_type: str,
                      notification_arns: list[str] | None = None, tags: dict[str, str] | None = None,
                      role_arn: str | None = None) -> tuple[str, str]:
    try:
        parsed = Stack.parse_template(template)
    except Exception as exc:
        raise ValidationError(
            message=f"Template format error: not well-formed JSON or YAML ({reason_of(exc)})"
        ) from None
    if not isinstance(parsed, dict) or not parsed.get("Resources"):
        raise ValidationError(message="Template format error: At least one Resources member must be defined.")
    existing = next((s for s in self.stacks.values() if s.name == stack_name), None)
    if change_set_type == "CREATE" and existing is not None:
        if existing.status != "REVIEW_IN_PROGRESS":
            raise cfn_models.AlreadyExistsException(
                f"Stack [{stack_name}] already exists and cannot be created again with the changeSet "
                f"[{change_set_name}]."
            )
        self.stacks.pop(existing.stack_id)  # moto makes a fresh REVIEW_IN_PROGRESS stack; keep only that one
        _drop_change_sets(self, existing.stack_id)
    if change_set_type == "UPDATE" and existing is not None and existing.status not in UPDATABLE:
        raise ValidationError(
            existing.stack_id,
            message=f"Stack:{existing.stack_id} is in {existing.status} state and can not be updated.",
        )
    return _moto_create_change_set(self, stack_name, change_set_name, template, parameters, description,
                                   change_set_type, notification_arns, tags, role_arn)


_moto_delete_stack = CloudFormationBackend.delete_stack


def delete_stack(self: CloudFormationBackend, name_or_stack_id: str) -> None:
    stack = next((s for s in self.stacks.values() if name_or_stack_id in (s.name, s.stack_id)), None)
    if stack is None or stack.status == "DELETE_IN_PROGRESS":
        return  # AWS: deleting a missing stack (or one being deleted) succeeds
    if stack.status.endswith("_IN_PROGRESS") and stack.status != "REVIEW_IN_PROGRESS":
        raise ValidationError(stack.stack_id, message=f"Stack {stack.name} is in {stack.status} state and can not "
                              "be deleted until that operation completes.")
    stack.status = "DELETE_IN_PROGRESS"

    def remove() -> None:
        self.deleted_stacks[stack.stack_id] = stack  # moto's delete_stack holds it in neither map meanwhile
        try:
            _run(stack, "DELETE", lambda: _moto_delete_stack(self, stack.stack_id))
        except Exception as exc:
            stack.status = "DELETE_FAILED"
            stack._add_stack_event("DELETE_FAILED", resource_status_reason=reason_of(exc))
            self.stacks[stack.stack_id] = stack
            self.deleted_stacks.pop(stack.stack_id, None)
        _drop_change_sets(self, stack.stack_id)

    _in_background(remove)


def _after_work(method: Any) -> Any:
    """Wrap a read that walks a stack's resources (moto creates missing ones lazily while walking): wait for the
    operation in progress instead of racing it."""
    if getattr(method, "_mlfn_locked", False):
        return method

    def locked(*args: Any, **kwargs: Any) -> Any:
        with _work_lock:
            return method(*args, **kwargs)

    locked._mlfn_locked = True  # type: ignore[attr-defined]
    return locked


def install() -> None:
    """Replace the moto functions and methods above. Idempotent."""
    for name in ("list_stack_resources", "describe_stack_resources", "describe_stack_resource"):
        setattr(CloudFormationBackend, name, _after_work(getattr(CloudFormationBackend, name)))
    parsing.parse_and_create_resource = parse_and_create_resource
    parsing.parse_and_update_resource = parse_and_update_resource
    parsing.ResourceMap._delete_resource = _delete_resource  # type: ignore[method-assign]
    parsing.ResourceMap.update = update  # type: ignore[method-assign]
    parsing.ResourceMap.delete = delete  # type: ignore[method-assign]
    CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]
    CloudFormationBackend.create_change_set = create_change_set  # type: ignore[method-assign]
    CloudFormationBackend.delete_stack = delete_stack  # type: ignore[method-assign]
