"""The batch state machines in the model's stack, from the real CDK synth (cdk-nag on): a Distributed Map for a
Lambda model, a Batch Transform job for a SageMaker model, each with the `[batch]` settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import IMAGE_URI, Synthesized


def definition(template: dict[str, Any]) -> dict[str, Any]:
    (machine,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    body = machine["Properties"]["DefinitionString"]
    text = "".join(part if isinstance(part, str) else "ARN" for part in body["Fn::Join"][1]) if isinstance(
        body, dict) else body
    return dict(json.loads(text))


def test_a_lambda_model_gets_a_distributed_map_over_jsonl(synthesized: Synthesized) -> None:
    template = synthesized.templates["lam-batch"]
    assert definition(template)["TimeoutSeconds"] == 7200  # [batch] timeout_s: past it, TIMED_OUT
    (state,) = definition(template)["States"].values()
    assert state["Type"] == "Map"
    assert state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    reader = state["ItemReader"]
    assert reader["Resource"].endswith(":states:::s3:getObject")
    assert reader["ReaderConfig"]["InputType"] == "JSONL"
    assert reader["Parameters"] == {"Bucket": "scores", "Key.$": "$.key"}
    assert state["ItemBatcher"] == {"MaxItemsPerBatch": 50, "MaxInputBytesPerBatch": 256 * 1024}
    assert state["MaxConcurrency"] == 8  # [batch] concurrency 0: the function's reserved concurrency
    assert state["ToleratedFailurePercentage"] == 5
    writer = state["ResultWriter"]
    assert writer["Resource"].endswith(":states:::s3:putObject")
    assert writer["WriterConfig"] == {"OutputType": "JSONL", "Transformation": "FLATTEN"}
    assert writer["Parameters"] == {"Bucket": "scores", "Prefix.$": "$.outputPrefix"}
    (task,) = state["ItemProcessor"]["States"].values()
    assert task["Type"] == "Task" and "Lambda.ServiceException" in task["Retry"][0]["ErrorEquals"]
    body = json.dumps([r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"])
    assert '"Ref": "ModelAlias' in body  # the function's `live` alias is what each batch invokes
    assert "BatchStateMachineArn" in template["Outputs"]


def test_a_sagemaker_model_gets_a_batch_transform_job(synthesized: Synthesized) -> None:
    template = synthesized.templates["sm-batch"]
    assert definition(template)["TimeoutSeconds"] == 86400  # [batch] timeout_s's default: one day
    (state,) = definition(template)["States"].values()
    assert state["Resource"].endswith(":states:::sagemaker:createTransformJob.sync")
    job = state["Parameters"]
    assert job["BatchStrategy"] == "MultiRecord" and job["MaxPayloadInMB"] == 10
    assert job["MaxConcurrentTransforms"] == 4
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformInput"]["ContentType"] == "application/jsonlines"
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri.$"] == "$.input"
    assert job["TransformOutput"] == {"S3OutputPath.$": "$.output", "Accept": "application/jsonlines",
                                      "AssembleWith": "Line"}
    assert job["TransformResources"] == {"InstanceCount": 2, "InstanceType": "ml.c5.xlarge"}


def test_no_state_machine_unless_asked(synthesized: Synthesized) -> None:
    types = {r["Type"] for r in synthesized.templates["lam-default"]["Resources"].values()}
    assert "AWS::StepFunctions::StateMachine" not in types


def test_an_ecs_model_gets_a_batch_transform_job_of_its_own_image(synthesized: Synthesized) -> None:
    for key in ("ecs-batch", "ecs-batch+uri"):
        template = synthesized.templates[key]
        (state,) = definition(template)["States"].values()
        assert state["Resource"].endswith(":states:::sagemaker:createTransformJob.sync")
        job = state["Parameters"]
        assert job["TransformResources"] == {"InstanceCount": 1, "InstanceType": "ml.g5.xlarge"}
        assert job["BatchStrategy"] == "MultiRecord" and job["TransformInput"]["SplitType"] == "Line"
        (model,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Model"]
        (task,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"]
        image = model["Properties"]["PrimaryContainer"]["Image"]
        if key.endswith("+uri"):  # the image `mlfn deploy` pushed (ECS spells its host with AWS::URLSuffix)
            assert image == IMAGE_URI
        else:  # the service's own image asset
            assert image == task["Properties"]["ContainerDefinitions"][0]["Image"]
        assert model["Properties"]["PrimaryContainer"]["Environment"]["MLFN_MODEL_DIR"]


def test_a_gpu_model_batch_on_a_cpu_or_unknown_instance_type_is_refused() -> None:
    from mlfn.infra.batch import check_transform_instance
    from mlfn.runtime.errors import SpecError

    check_transform_instance("ml.g5.xlarge", True)
    check_transform_instance("ml.m5.large", False)
    with pytest.raises(SpecError, match=r"batch\.instance_type.*a GPU instance type.*'ml\.m5\.large'"):
        check_transform_instance("ml.m5.large", True)
    with pytest.raises(SpecError, match=r"batch\.instance_type.*a SageMaker instance type Batch Transform runs"
                                        r".*'ml\.x9\.huge'"):
        check_transform_instance("ml.x9.huge", False)


def test_batch_instance_types_are_the_ones_create_transform_job_takes() -> None:
    """CreateTransformJob's TransformResources.InstanceType takes the `TransformInstanceType` values only (boto3's
    own service model is the API's): a hosting type outside them (ml.p4d, ml.p5, ml.r5, ml.c5.large) is refused at
    synth naming `batch.instance_type`, instead of failing the first batch's CreateTransformJob."""
    import botocore.session

    from mlfn.infra.batch import check_transform_instance
    from mlfn.infra.instance_types import SAGEMAKER_TYPES, TRANSFORM_TYPES
    from mlfn.runtime.errors import SpecError

    enum = set(botocore.session.get_session().get_service_model("sagemaker")
               .shape_for("TransformInstanceType").enum)
    assert set(TRANSFORM_TYPES) == set(SAGEMAKER_TYPES) & enum
    for name in ("ml.p4d.24xlarge", "ml.p5.48xlarge", "ml.c5.large", "ml.r5.xlarge"):
        with pytest.raises(SpecError, match=r"batch\.instance_type.*Batch Transform does not offer.*ml\.g5\.\*"):
            check_transform_instance(name, False)
    with pytest.raises(SpecError, match=r"a GPU instance type \(ml\.g4dn\.\*.*ml\.p3\.\*\)"):
        check_transform_instance("ml.c5.xlarge", True)


def _policy_statements(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every statement of the inline policies attached to the role `role_id` (AWS::IAM::Policy resources)."""
    found = []
    for resource in template["Resources"].values():
        props = resource["Properties"] if resource["Type"] == "AWS::IAM::Policy" else None
        if props and {"Ref": role_id} in props.get("Roles", []):
            found += props["PolicyDocument"]["Statement"]
    return found


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def _text(value: Any) -> str:
    return json.dumps(value)


@pytest.mark.parametrize("key", ["sm-batch", "ecs-batch", "ecs-batch+uri"])
def test_the_transform_jobs_role_pulls_the_image_writes_its_logs_and_metrics_and_reaches_the_bucket(
        synthesized: Synthesized, key: str) -> None:
    """What SageMaker's CreateModel execution role needs ("SageMaker Roles": cloudwatch:PutMetricData, logs
    CreateLogGroup/CreateLogStream/PutLogEvents/DescribeLogStreams, ECR pull), for the transform job's log group
    /aws/sagemaker/TransformJobs, and S3 on `[batch] bucket`."""
    template = synthesized.templates[key]
    (model,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Model"]
    role_id = model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
    statements = _policy_statements(template, role_id)
    granted = {a: [s for s in statements if a in _actions(s)] for s in statements for a in _actions(s)}
    for action in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"):
        assert action in granted, action
        assert any(":log-group:/aws/sagemaker/TransformJobs:" in _text(s["Resource"]) for s in granted[action])
    assert "cloudwatch:PutMetricData" in granted
    for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"):
        assert action in granted, action
    assert any(s["Resource"] == "*" for s in granted["ecr:GetAuthorizationToken"])
    for action in ("s3:GetObject", "s3:PutObject", "s3:ListBucket"):
        assert any("scores" in _text(s["Resource"]) for s in granted[action]), action


@pytest.mark.parametrize("key", ["sm-batch", "ecs-batch"])
def test_the_state_machines_role_runs_a_transform_job_sync_and_nothing_more(synthesized: Synthesized,
                                                                             key: str) -> None:
    """Step Functions' documented policy for `createTransformJob.sync`: Create/Describe/StopTransformJob and
    AddTags on transform jobs, ListTags, events PutTargets/PutRule/DescribeRule on
    StepFunctionsGetEventsForSageMakerTransformJobsRule, and iam:PassRole of the job's role to SageMaker."""
    template = synthesized.templates[key]
    (machine,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    role_id = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    statements = _policy_statements(template, role_id)
    by_action = {a: s for s in statements for a in _actions(s)}
    for action in ("sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob",
                   "sagemaker:AddTags", "sagemaker:ListTags"):
        assert action in by_action, action
        assert ":transform-job/" in _text(by_action[action]["Resource"]), action
    for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
        assert "rule/StepFunctionsGetEventsForSageMakerTransformJobsRule" in _text(by_action[action]["Resource"])
    passrole = by_action["iam:PassRole"]
    assert passrole.get("Condition") == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert _text(passrole["Resource"]).count("Fn::GetAtt") == 1  # the transform job's role, no other
    assert set(by_action) <= {"sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob",
                              "sagemaker:StopTransformJob", "sagemaker:AddTags", "sagemaker:ListTags",
                              "events:PutTargets", "events:PutRule", "events:DescribeRule", "iam:PassRole"}


@pytest.mark.parametrize("key", ["sm-batch", "ecs-batch"])
def test_the_transform_job_is_named_after_the_execution_which_by_default_is_a_valid_job_name(
        synthesized: Synthesized, key: str) -> None:
    """TransformJobName is the execution's name; CreateTransformJob takes 1 to 63 characters matching
    `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`, while StartExecution takes names of up to 80 characters (underscores too) and
    generates a UUID without one: that UUID is a valid job name, a longer name or one with `_` is not."""
    import re
    import uuid

    import botocore.session

    (state,) = definition(synthesized.templates[key])["States"].values()
    assert state["Parameters"]["TransformJobName.$"] == "$$.Execution.Name"
    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("TransformJobName").metadata
    assert (shape["min"], shape["max"]) == (1, 63)
    valid = re.compile(f"^(?:{shape['pattern']})$")
    assert valid.match(str(uuid.uuid4()))
    assert not valid.match("nightly_2026_12_04") and not valid.match("a" * 64)
