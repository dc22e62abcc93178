"""DeletionPolicy through the deploy engine: what a rolled-back first create keeps, and whether the next create of
the same fixed name succeeds (CloudFormation: "Resource of type ... already exists", HandlerErrorCode AlreadyExists).

`Retain` keeps a resource on stack deletion and on rollback; `RetainExceptOnCreate` keeps it on deletion but not
when the operation that created it rolls back. mlfn's log groups use the latter: SageMaker's have fixed names, and a
first deploy that fails (an `ml.g5` quota of 0 is common in new accounts) must not block the next one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlfn.cli.aws.cloudformation import (
    DeployError,
    StackEvent,
    delete_log_groups,
    deploy,
    destroy,
    fixed_name_log_groups,
)


def _template(group_name: str, policy: str, *, failing_role: str | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "Logs": {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": policy, "UpdateReplacePolicy": "Retain",
                 "Properties": {"LogGroupName": group_name, "RetentionInDays": 7}},
    }
    if failing_role:  # a role whose name is taken: fails after the group was made
        resources["Taken"] = {"Type": "AWS::IAM::Role", "DependsOn": "Logs", "Properties": {
            "RoleName": failing_role, "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}}}
    return {"Resources": resources, "Outputs": {"Group": {"Value": {"Ref": "Logs"}}}}


def _groups(session: Any, name: str) -> list[str]:
    found = session.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return [g["logGroupName"] for g in found if g["logGroupName"] == name]


def _fail_first_create(session: Any, stack_name: str, template: dict[str, Any]) -> list[StackEvent]:
    events: list[StackEvent] = []
    with pytest.raises(DeployError) as failure:
        deploy(template, stack_name, session=session, on_event=events.append)
    assert failure.value.status == "ROLLBACK_COMPLETE" and failure.value.resource == "Taken"
    return events


@pytest.fixture()
def taken_role(session: Any, stack_name: str) -> str:
    name = f"{stack_name}-taken"
    session.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": []}))
    return name


def test_retained_group_of_a_rolled_back_create_blocks_the_next_create(session: Any, stack_name: str,
                                                                      taken_role: str) -> None:
    group = f"/mlfn/{stack_name}/retain"
    events = _fail_first_create(session, stack_name, _template(group, "Retain", failing_role=taken_role))

    assert _groups(session, group) == [group]  # Retain: the rollback kept it
    assert [e.status for e in events if e.logical_id == "Logs"][-1] == "DELETE_SKIPPED"
    with pytest.raises(DeployError) as again:
        deploy(_template(group, "Retain"), stack_name, session=session)
    assert again.value.resource == "Logs" and again.value.status == "ROLLBACK_COMPLETE"
    identifier = json.dumps({"/properties/LogGroupName": group}, separators=(",", ":"))
    assert (f"Resource of type 'AWS::Logs::LogGroup' with identifier '{identifier}' already exists."
            in again.value.reason)
    assert "HandlerErrorCode: AlreadyExists" in again.value.reason


def test_retain_except_on_create_lets_the_next_create_go_and_keeps_the_group_on_destroy(
        session: Any, stack_name: str, taken_role: str) -> None:
    group = f"/mlfn/{stack_name}/except-on-create"
    _fail_first_create(session, stack_name, _template(group, "RetainExceptOnCreate", failing_role=taken_role))
    assert _groups(session, group) == []  # the rollback of the create that made it deleted it

    result = deploy(_template(group, "RetainExceptOnCreate"), stack_name, session=session)
    assert result.status == "CREATED" and result.outputs["Group"] == group

    events: list[StackEvent] = []
    assert destroy(stack_name, session=session, on_event=events.append) is True
    assert _groups(session, group) == [group]  # a stack deletion is not the create's rollback: kept
    assert [e.status for e in events if e.logical_id == "Logs"][-1] == "DELETE_SKIPPED"


def test_update_rollback_deletes_what_it_created_except_retain(session: Any, stack_name: str, taken_role: str) -> None:
    kept_group, dropped_group = f"/mlfn/{stack_name}/kept", f"/mlfn/{stack_name}/dropped"
    deploy({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}, stack_name, session=session)
    template = _template(kept_group, "Retain", failing_role=taken_role)
    template["Resources"]["Queue"] = {"Type": "AWS::SQS::Queue"}
    template["Resources"]["Dropped"] = {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "RetainExceptOnCreate",
                                        "Properties": {"LogGroupName": dropped_group}}
    template["Resources"]["Taken"]["DependsOn"] = ["Logs", "Dropped"]

    with pytest.raises(DeployError) as failure:
        deploy(template, stack_name, session=session)

    assert failure.value.status == "UPDATE_ROLLBACK_COMPLETE"
    assert _groups(session, kept_group) == [kept_group] and _groups(session, dropped_group) == []


class ResourceLimitExceeded(Exception):
    """SageMaker's answer to CreateEndpoint in an account whose quota for the instance type is 0."""

    def __init__(self, instance_type: str) -> None:
        self.message = (f"The account-level service limit '{instance_type} for endpoint usage' is 0 Instances, with "
                        "current utilization of 0 Instances and a request delta of 1 Instances. Please contact AWS "
                        "support to request an increase for this limit.")
        super().__init__(self.message)


@pytest.mark.slow
def test_sagemaker_stack_deploys_after_a_first_create_that_rolled_back(
        session: Any, functions_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real SageMaker template (fixed-name endpoint log groups): quota 0 on the first deploy, then raised."""
    from moto.sagemaker.models import SageMakerModelBackend

    from mlfn.infra.synth import synth_model

    image = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfn-iris@sha256:{'ef' * 32}"
    template = synth_model(functions_dir / "iris", image_uri=image, stage="prod", target="sagemaker",
                           outdir=tmp_path / "synth").read_text()
    stack_name = "mlfn-iris-quota"

    def no_quota(self: Any, endpoint_name: str, endpoint_config_name: str, *args: Any, **kwargs: Any) -> None:
        variants = self.describe_endpoint_config(endpoint_config_name)["ProductionVariants"]
        raise ResourceLimitExceeded(variants[0]["InstanceType"])

    with monkeypatch.context() as patch, pytest.raises(DeployError) as failure:
        patch.setattr(SageMakerModelBackend, "create_endpoint", no_quota)
        deploy(template, stack_name, session=session)
    assert failure.value.status == "ROLLBACK_COMPLETE"
    assert "for endpoint usage' is 0 Instances" in failure.value.reason

    result = deploy(template, stack_name, session=session)  # the quota was raised

    assert result.status == "CREATED", result
    endpoint_logs = f"/aws/sagemaker/Endpoints/{result.outputs['EndpointName']}"
    assert _groups(session, endpoint_logs)

    # `mlfn destroy`: the stack keeps its log groups; the fixed-name ones would block the next deploy, so it
    # deletes them after the stack (what `--keep-logs` skips).
    fixed = fixed_name_log_groups(session, stack_name)
    assert endpoint_logs in fixed and len(fixed) == 2  # the endpoint's and the inference component's
    destroy(stack_name, session=session)
    assert _groups(session, endpoint_logs) == [endpoint_logs]
    assert sorted(delete_log_groups(session, fixed)) == sorted(fixed)
    assert deploy(template, stack_name, session=session).status == "CREATED"
    destroy(stack_name, session=session)
    delete_log_groups(session, fixed)
