"""mlfn.cli.aws.cloudformation against the emulator's control plane: a real moto server over HTTP, no mocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mlfn.cli.aws.cloudformation import (
    DeployError,
    StackEvent,
    deploy,
    destroy,
    list_stacks,
    stack_outputs,
    wait_for_stack,
)
from mlfn.cli.local.function_urls import function_url_for


def test_first_deploy_creates_everything_and_outputs_resolve(session: Any, stack_name: str,
                                                            make_lambda_template: Any, image_uri: str) -> None:
    events: list[StackEvent] = []
    result = deploy(make_lambda_template(), stack_name, session=session, on_event=events.append,
                    tags={"mlfn:stage": "dev"})

    assert result.status == "CREATED"
    url = result.outputs["InvokeUrl"]
    assert urlsplit(url).scheme == "https" and urlsplit(url).hostname == "127.0.0.1" and urlsplit(url).port
    function = result.outputs["FunctionName"]
    lam = session.client("lambda")
    assert lam.get_function_url_config(FunctionName=function, Qualifier="live")["FunctionUrl"] == url
    assert function_url_for(function, "live") == url
    config = lam.get_function(FunctionName=function)
    assert config["Configuration"]["PackageType"] == "Image"
    assert config["Code"]["ImageUri"] == image_uri
    assert config["Configuration"]["MemorySize"] == 2048
    assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == result.outputs["Version"] == "1"
    assert lam.get_provisioned_concurrency_config(FunctionName=function, Qualifier="live")["Status"] == "READY"
    targets = session.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="lambda", ResourceIds=[f"function:{function}:live"])["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(1, 4)]
    alarm_name = result.outputs["AlarmArn"].rsplit(":", 1)[1]
    assert session.client("cloudwatch").describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"]
    # one CREATE_COMPLETE event per resource, each after its CREATE_IN_PROGRESS, and the stack's own at the end
    done = [e.logical_id for e in events
            if e.status == "CREATE_COMPLETE" and e.resource_type != "AWS::CloudFormation::Stack"]
    assert sorted(done) == sorted(make_lambda_template()["Resources"])
    assert (events[-1].logical_id, events[-1].status) == (stack_name, "CREATE_COMPLETE")
    assert next(e for e in events if e.logical_id == "Fn").line().split() == [
        "CREATE_IN_PROGRESS", "Fn", "(AWS::Lambda::Function)"]
    listed = {s["name"]: s for s in list_stacks(session)}
    assert listed[stack_name]["status"] == "CREATE_COMPLETE"
    assert listed[stack_name]["outputs"] == result.outputs


def test_sagemaker_target_with_inference_component_and_http_api(session: Any, stack_name: str,
                                                               make_sagemaker_template: Any) -> None:
    result = deploy(make_sagemaker_template(), stack_name, session=session)

    assert result.status == "CREATED"
    assert urlsplit(result.outputs["InvokeUrl"]).hostname == "127.0.0.1"
    sm = session.client("sagemaker")
    component = sm.describe_inference_component(InferenceComponentName=result.outputs["InferenceComponentName"])
    assert component["EndpointName"] == result.outputs["EndpointName"]
    assert component["InferenceComponentStatus"] == "InService"
    assert component["RuntimeConfig"]["DesiredCopyCount"] == 1
    targets = session.client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")
    dims = {(t["ResourceId"], t["ScalableDimension"], t["MinCapacity"]) for t in targets["ScalableTargets"]}
    assert (f"inference-component/{component['InferenceComponentName']}",
            "sagemaker:inference-component:DesiredCopyCount", 0) in dims
    routes = session.client("apigatewayv2").get_routes(
        ApiId=next(a["ApiId"] for a in session.client("apigatewayv2").get_apis()["Items"]
                   if a["ApiEndpoint"] == result.outputs["InvokeUrl"]))["Items"]
    assert [(r["RouteKey"], r["AuthorizationType"]) for r in routes] == [("POST /invocations", "AWS_IAM")]


def test_redeploy_without_changes_reports_no_changes(session: Any, stack_name: str, make_lambda_template: Any) -> None:
    first = deploy(make_lambda_template(), stack_name, session=session)
    events: list[StackEvent] = []
    again = deploy(make_lambda_template(), stack_name, session=session, on_event=events.append)

    assert again.status == "NO_CHANGES"
    assert again.outputs == first.outputs
    assert events == []  # nothing was executed
    cfn = session.client("cloudformation")
    assert cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert not [s for s in cfn.list_change_sets(StackName=stack_name)["Summaries"] if s["StackName"] == stack_name]


def test_changed_template_updates_in_place_and_moves_the_alias(session: Any, stack_name: str,
                                                               make_lambda_template: Any) -> None:
    first = deploy(make_lambda_template(), stack_name, session=session)
    result = deploy(make_lambda_template(memory=3008, version_id="Version2"), stack_name, session=session)

    assert result.status == "UPDATED"
    assert {c["logical_id"]: c["action"] for c in result.changes}["Version2"] == "Add"
    function = result.outputs["FunctionName"]
    assert function == first.outputs["FunctionName"]
    assert result.outputs["InvokeUrl"] == first.outputs["InvokeUrl"]  # the URL survives a new version
    lam = session.client("lambda")
    assert lam.get_function_configuration(FunctionName=function)["MemorySize"] == 3008
    assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == result.outputs["Version"] == "2"


def test_failed_update_rolls_back_with_the_resource_reason_and_keeps_serving(
        session: Any, stack_name: str, make_lambda_template: Any) -> None:
    good = deploy(make_lambda_template(), stack_name, session=session)
    iam = session.client("iam")
    iam.create_role(RoleName=f"{stack_name}-taken", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17",
                                                                                         "Statement": []}))
    bad = make_lambda_template(memory=4096, version_id="Version2")
    bad["Resources"]["Extra"] = {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": f"{stack_name}-taken", "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}}}
    events: list[StackEvent] = []

    with pytest.raises(DeployError) as failure:
        deploy(bad, stack_name, session=session, on_event=events.append)

    error = failure.value
    assert error.resource == "Extra" and error.resource_type == "AWS::IAM::Role"
    assert "already exists" in error.reason and "already exists" in str(error)
    assert "The following resource(s) failed" not in str(error)
    assert "previous version keeps serving" in str(error)
    assert error.status == "UPDATE_ROLLBACK_COMPLETE"
    assert [e.status for e in events if e.logical_id == stack_name][-1] == "UPDATE_ROLLBACK_COMPLETE"
    assert stack_outputs(session, stack_name) == good.outputs
    function = good.outputs["FunctionName"]
    lam = session.client("lambda")
    assert lam.get_function_configuration(FunctionName=function)["MemorySize"] == 2048
    assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == "1"
    # and the next good deploy goes ahead from UPDATE_ROLLBACK_COMPLETE
    assert deploy(make_lambda_template(memory=4096, version_id="Version2"), stack_name,
                  session=session).status == "UPDATED"


def test_failed_first_deploy_rolls_back_then_next_deploy_recreates(session: Any, stack_name: str,
                                                                   make_lambda_template: Any) -> None:
    bad = make_lambda_template()
    bad["Resources"]["Alias"]["Properties"]["FunctionVersion"] = "7"  # no such version
    bad["Outputs"].pop("Version")
    with pytest.raises(DeployError) as failure:
        deploy(bad, stack_name, session=session)

    assert failure.value.resource == "Alias"
    assert failure.value.status == "ROLLBACK_COMPLETE"
    cfn = session.client("cloudformation")
    assert cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"] == "ROLLBACK_COMPLETE"
    functions = [f["FunctionName"] for f in session.client("lambda").list_functions()["Functions"]]
    assert not [f for f in functions if f.startswith(f"{stack_name}-Fn")]  # what was made is gone

    notes: list[str] = []
    result = deploy(make_lambda_template(), stack_name, session=session, on_note=notes.append)
    assert result.status == "CREATED"
    assert any("ROLLBACK" in n or "rolled back" in n for n in notes)


def test_deploy_continues_after_an_interrupted_one(session: Any, stack_name: str, make_lambda_template: Any) -> None:
    cfn = session.client("cloudformation")
    # a deploy interrupted after creating its change set, before executing it
    cfn.create_change_set(StackName=stack_name, ChangeSetName="mlfn-interrupted", ChangeSetType="CREATE",
                          TemplateBody=json.dumps(make_lambda_template()))
    assert cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"] == "REVIEW_IN_PROGRESS"

    result = deploy(make_lambda_template(), stack_name, session=session)

    assert result.status == "CREATED"
    stacks = [s for s in cfn.list_stacks()["StackSummaries"]
              if s["StackName"] == stack_name and s["StackStatus"] != "DELETE_COMPLETE"]
    assert len(stacks) == 1
    assert [s["ChangeSetName"] for s in cfn.list_change_sets(StackName=stack_name)["Summaries"]
            if s["StackName"] == stack_name and s["ChangeSetName"] == "mlfn-interrupted"] == []


def test_template_over_51200_bytes_goes_through_s3(session: Any, stack_name: str, make_lambda_template: Any,
                                                   tmp_path: Path) -> None:
    template = make_lambda_template()
    template["Metadata"] = {"Padding": "x" * 60_000}
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template))
    notes: list[str] = []

    result = deploy(path, stack_name, session=session, on_note=notes.append)

    assert result.status == "CREATED"
    buckets = [b["Name"] for b in session.client("s3").list_buckets()["Buckets"]]
    assert "mlfn-templates-123456789012-us-east-1" in buckets
    assert deploy(template, stack_name, session=session).status == "NO_CHANGES"


def test_refused_template_is_one_clear_error(session: Any, stack_name: str) -> None:
    with pytest.raises(DeployError) as failure:
        deploy("{not json", stack_name, session=session)
    assert stack_name in str(failure.value)


def test_destroy_removes_the_stack_and_its_resources(session: Any, stack_name: str, make_lambda_template: Any) -> None:
    result = deploy(make_lambda_template(), stack_name, session=session)
    function = result.outputs["FunctionName"]
    events: list[StackEvent] = []

    assert destroy(stack_name, session=session, on_event=events.append) is True

    assert stack_outputs(session, stack_name) == {}
    functions = [f["FunctionName"] for f in session.client("lambda").list_functions()["Functions"]]
    assert function not in functions
    assert function_url_for(function, "live") is None
    assert {e.logical_id for e in events if e.status == "DELETE_COMPLETE"} >= {"Fn", "Alias", "Url", stack_name}
    assert destroy(stack_name, session=session) is False


def test_ctrl_c_while_waiting_leaves_a_stack_the_next_deploy_continues_from(
        session: Any, stack_name: str, make_lambda_template: Any) -> None:
    def interrupt(event: StackEvent) -> None:
        if event.logical_id == "Fn":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deploy(make_lambda_template(), stack_name, session=session, on_event=interrupt)

    # nothing local to repair: the next deploy finds the stack where CloudFormation left it and carries on
    result = deploy(make_lambda_template(), stack_name, session=session)
    assert result.status in ("NO_CHANGES", "CREATED")
    assert result.outputs["InvokeUrl"].startswith("https://127.0.0.1:")
    status = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
    assert status == "CREATE_COMPLETE"


def test_next_deploy_waits_for_one_still_in_progress(session: Any, stack_name: str, make_lambda_template: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from mlfn.cli.local import cfn_engine

    monkeypatch.setattr(cfn_engine.SETTINGS, "resource_delay_s", 0.1)  # slow enough to interrupt mid-way

    def interrupt(event: StackEvent) -> None:
        if event.resource_type != "AWS::CloudFormation::Stack":
            raise KeyboardInterrupt  # Ctrl-C at the first resource event

    with pytest.raises(KeyboardInterrupt):
        deploy(make_lambda_template(), stack_name, session=session, on_event=interrupt)
    cfn = session.client("cloudformation")
    assert cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"] == "CREATE_IN_PROGRESS"

    notes: list[str] = []
    result = deploy(make_lambda_template(), stack_name, session=session, on_note=notes.append)

    assert any("CREATE_IN_PROGRESS" in note and "waiting" in note for note in notes)
    assert result.status == "NO_CHANGES"  # the interrupted deploy finished what the second one asked for
    assert result.outputs["InvokeUrl"].startswith("https://127.0.0.1:")


def test_serverless_endpoint_of_a_network_isolated_model_fails_the_deploy(session: Any, stack_name: str,
                                                                          make_sagemaker_template: Any) -> None:
    template = make_sagemaker_template()
    resources = template["Resources"]
    resources["Model"]["Properties"]["EnableNetworkIsolation"] = True
    resources["Config"]["Properties"] = {"ProductionVariants": [{
        "VariantName": "AllTraffic", "ModelName": {"Fn::GetAtt": ["Model", "ModelName"]},
        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2}}]}
    for name in ("Endpoint", "Component", "Copies", "ScaleOutFromZero", "NoCapacity"):
        resources.pop(name)
    template["Outputs"] = {"Target": {"Value": "sagemaker"}}

    with pytest.raises(DeployError) as failure:
        deploy(template, stack_name, session=session)

    assert failure.value.resource == "Config" and failure.value.status == "ROLLBACK_COMPLETE"
    assert "network isolation is not supported for serverless endpoints" in failure.value.reason.lower()


def test_large_template_url_names_the_s3_host_of_the_region_partition(emulator_env: None) -> None:
    # China's endpoints end amazonaws.com.cn: a TemplateURL on amazonaws.com names no S3 bucket there.
    import boto3

    from mlfn.cli.aws.cloudformation import _template_argument
    from mlfn.cli.aws.session import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

    china = boto3.Session(aws_access_key_id=LOCAL_ACCESS_KEY, aws_secret_access_key=LOCAL_SECRET_KEY,
                          region_name="cn-north-1")
    body = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}, "Metadata": {"Padding": "x" * 60_000}})

    url = _template_argument(china, body, "mlfn-china-dev", lambda note: None)["TemplateURL"]

    parts = urlsplit(url)
    bucket, _, host = parts.netloc.partition(".")
    assert host == "s3.cn-north-1.amazonaws.com.cn"
    stored = china.client("s3").get_object(Bucket=bucket, Key=parts.path.lstrip("/"))["Body"].read()
    assert stored.decode() == body
    assert deploy(body, "mlfn-china-dev", session=china).status == "CREATED"


def test_an_update_not_waited_for_returns_started_while_cloudformation_finishes_it(
        session: Any, stack_name: str, make_lambda_template: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`wait=False` (mlfn deploy --no-wait of a rollout): back once ExecuteChangeSet was accepted, the stack still
    UPDATE_IN_PROGRESS; the update then completes without the caller."""
    from mlfn.cli.local import cfn_engine

    first = deploy(make_lambda_template(), stack_name, session=session)
    monkeypatch.setattr(cfn_engine.SETTINGS, "resource_delay_s", 0.3)  # an update that lasts a few seconds
    result = deploy(make_lambda_template(memory=3008, version_id="Version2"), stack_name, session=session,
                    wait=False)
    cfn = session.client("cloudformation")
    assert result.status == "STARTED"
    assert cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"] == "UPDATE_IN_PROGRESS"
    assert result.outputs == first.outputs  # the live stack's outputs until the update ends
    assert {c["logical_id"]: c["action"] for c in result.changes}["Version2"] == "Add"
    stack, _ = wait_for_stack(cfn, result.stack_id, stack_name, timeout_s=120)
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
