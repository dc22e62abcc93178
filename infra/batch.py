"""`MlfnBatchEngine`: the model's batch engine, one Step Functions state machine in its stack, so a batch over a
dataset in S3 is one execution that runs without mlfn's process staying alive. Its role reaches `[batch] bucket` only.
Its `TimeoutSeconds` is `[batch] timeout_s`: an execution running longer ends `TIMED_OUT` (error `States.Timeout`).

- Lambda: a Distributed Map. The execution's input is `{"key": ..., "outputPrefix": ...}`. Its ItemReader reads
  that JSON Lines object line by line, its ItemBatcher hands the function `{"Items": [...]}` of up to
  `records_per_call` records and under the 256 KB a batch may hold, at most `concurrency` at once (never above the
  function's reserved concurrency), and its ResultWriter writes every child's results (one per record, flattened)
  as JSON Lines under `outputPrefix`. `max_failed_percent` is its ToleratedFailurePercentage.
- SageMaker: a Batch Transform job of the model's own SageMaker model (`.sync`: the execution ends with the job),
  `SplitType: Line`, `BatchStrategy: MultiRecord` up to `max_payload_mb`, `MaxConcurrentTransforms`, instance type
  and count from `[batch]`, `AssembleWith: Line`; input `{"input": "s3://...", "output": "s3://..."}`, results at
  `<output>/<name>.out`.
- ECS: the same Batch Transform job, of a SageMaker model made here from the ECS service's own image (the GPU
  runtime base serves SageMaker's contract: `serve`, port 8080, /ping, /invocations) with a role of its own that
  pulls that image; `[batch] instance_type` must then be a SageMaker GPU type (the ECS target's models need a GPU).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from mlfn.runtime.errors import SpecError
from mlfn.runtime.multi_record import CONTENT_TYPE as JSONL
from mlfn.runtime.spec import CONFIG_FILE

from .base import MlfnModel
from .image import MODEL_DIR_IN_IMAGE
from .instance_types import SAGEMAKER_TYPES, TRANSFORM_TYPES, families
from .nag import acknowledge
from .scaling import ECR_TOKEN_REASON

MAP_BATCH_LIMIT_BYTES = 256 * 1024  # a Distributed Map batch stays under 256 KB (ItemBatcher)
AUTO_MAP_CONCURRENCY = 10  # `[batch] concurrency = 0` on a function without reserved concurrency
TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"  # where SageMaker writes every transform job's logs


def map_concurrency(concurrency: int, reserved: int) -> int:
    """The map's MaxConcurrency: the setting, else the function's reserved concurrency, else 10."""
    if concurrency:
        return concurrency
    return reserved if reserved > 0 else AUTO_MAP_CONCURRENCY


def check_transform_instance(instance_type: str, gpu: bool) -> None:
    """`[batch] instance_type`: a SageMaker instance type Batch Transform can run (CreateTransformJob's
    `TransformInstanceType`, which leaves out some hosting types), with a GPU for a GPU model."""
    itype = TRANSFORM_TYPES.get(instance_type)
    if itype is None:
        known = "a hosting type Batch Transform does not offer; " if instance_type in SAGEMAKER_TYPES else ""
        raise SpecError(CONFIG_FILE, "batch.instance_type", f"a SageMaker instance type Batch Transform runs "
                        f"({known}{families(TRANSFORM_TYPES)})", repr(instance_type))
    if gpu and not itype.gpus:
        gpus = {name: t for name, t in TRANSFORM_TYPES.items() if t.gpus}
        raise SpecError(CONFIG_FILE, "batch.instance_type", f"a GPU instance type ({families(gpus)}): the model "
                        "needs a GPU", repr(instance_type))


class MlfnBatchEngine(Construct):
    """The batch state machine of `model` (a Lambda or SageMaker model)."""

    def __init__(self, scope: Construct, id: str, *, model: MlfnModel) -> None:
        super().__init__(scope, id)
        self.model = model
        b = model.spec.settings.batch
        self.bucket = s3.Bucket.from_bucket_name(self, "Data", b.bucket)
        self.role: iam.IRole | None = None  # the role the transform job runs as (container targets)
        self.model_name: str | None = None  # the SageMaker model the transform job runs (container targets)
        if model.TARGET == "lambda":
            body: sfn.IChainable = self._distributed_map(b)
        elif model.TARGET == "sagemaker":
            check_transform_instance(b.instance_type, model.spec.settings.gpu)
            self.role = model.role  # type: ignore[attr-defined]
            self.model_name = model.model.attr_model_name  # type: ignore[attr-defined]
            body = self._transform_job(b, self.model_name)
        elif model.TARGET == "ecs":
            check_transform_instance(b.instance_type, True)
            self.model_name = self._model_of_image()
            body = self._transform_job(b, self.model_name)
        else:
            raise ValueError(f"no batch engine for target {model.TARGET!r}: use target lambda, sagemaker or ecs")
        self.state_machine = sfn.StateMachine(
            self, "StateMachine", definition_body=sfn.DefinitionBody.from_chainable(body),
            comment=f"mlfn {model.spec.name}: batch inference over a dataset in S3",
            timeout=cdk.Duration.seconds(b.timeout_s),  # TimeoutSeconds: past it the execution is TIMED_OUT
        )
        if model.TARGET != "lambda":
            self._narrow_list_tags()
        self._acknowledge()

    def _model_of_image(self) -> str:
        """A SageMaker model of the ECS service's image (the URI given, or the model construct's image asset),
        with a role that pulls it; returns the model's name."""
        from aws_cdk import aws_sagemaker as sagemaker
        from aws_cdk.aws_ecr_assets import DockerImageAsset

        role = iam.Role(self, "TransformRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                        description=f"mlfn {self.model.spec.name}: Batch Transform pulls the model's image")
        if self.model.image is not None:
            repository = self.model.node.try_find_child("Repository")  # the ECS model's reference to it
            assert repository is not None
            uri = self.model.image.uri
            repository.grant_pull(role)  # type: ignore[attr-defined]
        else:
            asset = self.model.node.try_find_child("Image")
            assert isinstance(asset, DockerImageAsset)
            uri = asset.image_uri
            asset.repository.grant_pull(role)
        acknowledge(role, {"IAM5[Resource::*]": ECR_TOKEN_REASON})
        self.role = role
        model = sagemaker.CfnModel(
            self, "TransformModel", execution_role_arn=role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=uri, environment={"MLFN_MODEL_DIR": MODEL_DIR_IN_IMAGE}))
        model.node.add_dependency(role)  # the role's policy first: CreateModel checks the image can be pulled
        return model.attr_model_name

    def _narrow_list_tags(self) -> None:
        """The transform task grants `sagemaker:ListTags` on '*'; the job it tags is a transform job of this
        account and region, so the statement is narrowed to those."""
        policy = self.state_machine.role.node.try_find_child("DefaultPolicy")
        assert isinstance(policy, iam.Policy)
        stack = cdk.Stack.of(self)
        statements = stack.resolve(policy.document.to_json())["Statement"]
        for i, statement in enumerate(statements):
            if statement["Action"] == "sagemaker:ListTags" and statement["Resource"] == "*":
                cfn = policy.node.default_child
                assert isinstance(cfn, iam.CfnPolicy)
                cfn.add_property_override(f"PolicyDocument.Statement.{i}.Resource", stack.format_arn(
                    service="sagemaker", resource="transform-job", resource_name="*"))
                acknowledge(policy, {"IAM5[Resource::*]": "sagemaker:ListTags is narrowed to this account's transform "
                                                          "jobs by a property override cdk-nag does not read"})

    def _acknowledge(self) -> None:
        """What cdk-nag finds, each for its reason: the map's child executions and the transform jobs are named at
        run time; objects are any key of the one bucket `[batch] bucket` names."""
        stack = cdk.Stack.of(self)
        machine = stack.get_logical_id(self.state_machine.node.default_child)  # type: ignore[arg-type]
        runtime_named = "named at run time by each execution (its own child executions, its transform job)"
        execution = ('Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:'
                     f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{machine}"}}]}}]}}')
        objects = f"Resource::arn:<AWS::Partition>:s3:::{self.bucket.bucket_name}/*"
        acknowledge(self, {
            f"IAM5[{execution}:*]": runtime_named,
            f"IAM5[{execution}/*:*]": runtime_named,
            "IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:transform-job/*]":
                runtime_named,
            f"IAM5[{objects}]": "a batch reads and writes the objects each execution names, in [batch] bucket only",
            "SF1": "each execution's history and its Map Run (item counts, failures) stay in Step Functions, and the "
                   "model logs every call; CloudWatch log delivery would need logs:* actions on Resource '*'",
            "SF2": "X-Ray tracing would need xray:PutTraceSegments on Resource '*'; the model's own metrics remain",
        })
        if self.role is not None:
            acknowledge(self.role, {f"IAM5[{objects}]": "a transform job reads and writes the objects each "
                                                        "execution names, in [batch] bucket only"})

    def _distributed_map(self, b: object) -> sfn.IChainable:
        from mlfn.runtime.settings import BatchSettings

        assert isinstance(b, BatchSettings)
        function = self.model.alias  # type: ignore[attr-defined]
        reserved = self.model.spec.settings.lambda_.reserved_concurrency
        invoke = tasks.LambdaInvoke(self, "Score", lambda_function=function, payload_response_only=True,
                                    retry_on_service_exceptions=True)
        scored = sfn.DistributedMap(
            self, "Records",
            item_reader=sfn.S3JsonLItemReader(bucket=self.bucket, key=sfn.JsonPath.string_at("$.key")),
            item_batcher=sfn.ItemBatcher(max_items_per_batch=b.records_per_call,
                                         max_input_bytes_per_batch=min(b.max_payload_mb * 2**20,
                                                                       MAP_BATCH_LIMIT_BYTES)),
            max_concurrency=map_concurrency(b.concurrency, reserved),
            tolerated_failure_percentage=b.max_failed_percent,
            result_writer_v2=sfn.ResultWriterV2(
                bucket=self.bucket, prefix=sfn.JsonPath.string_at("$.outputPrefix"),
                writer_config=sfn.WriterConfig(output_type=sfn.OutputType.JSONL,
                                               transformation=sfn.Transformation.FLATTEN)),
        )
        scored.item_processor(invoke)
        return scored

    def _transform_job(self, b: object, model_name: str) -> sfn.IChainable:
        from mlfn.runtime.settings import BatchSettings

        assert isinstance(b, BatchSettings)
        return tasks.SageMakerCreateTransformJob(
            self, "Transform",
            transform_job_name=sfn.JsonPath.string_at("$$.Execution.Name"),
            model_name=model_name,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            batch_strategy=tasks.BatchStrategy.MULTI_RECORD,
            max_payload=cdk.Size.mebibytes(b.max_payload_mb),
            max_concurrent_transforms=b.concurrency or None,
            transform_input=tasks.TransformInput(
                transform_data_source=tasks.TransformDataSource(s3_data_source=tasks.TransformS3DataSource(
                    s3_uri=sfn.JsonPath.string_at("$.input"), s3_data_type=tasks.S3DataType.S3_PREFIX)),
                content_type=JSONL, split_type=tasks.SplitType.LINE),
            transform_output=tasks.TransformOutput(s3_output_path=sfn.JsonPath.string_at("$.output"),
                                                   accept=JSONL, assemble_with=tasks.AssembleWith.LINE),
            transform_resources=tasks.TransformResources(
                instance_count=b.instance_count,
                instance_type=ec2.InstanceType(b.instance_type.removeprefix("ml."))),
            role=self._transform_role(),
        )

    def _transform_role(self) -> iam.IRole:
        """The role the transform job runs as (the SageMaker model's execution role: it pulls the image), which
        reads and writes `[batch] bucket` and, as SageMaker's CreateModel execution role needs ("SageMaker Roles"),
        writes the job's logs (`/aws/sagemaker/TransformJobs`, a group SageMaker shares across the account's jobs
        and creates on first use) and its metrics (`cloudwatch:PutMetricData`, which takes no resource scope)."""
        role = self.role
        assert role is not None
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
            resources=[self.bucket.bucket_arn, self.bucket.arn_for_objects("*")]))
        stack = cdk.Stack.of(self)
        group = stack.format_arn(service="logs", resource="log-group", resource_name=TRANSFORM_LOG_GROUP,
                                 arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[group, f"{group}:*"]))
        role.add_to_principal_policy(iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"]))
        acknowledge(role, {
            f"IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
            f"{TRANSFORM_LOG_GROUP}:*]": "a transform job's log streams are named by SageMaker at run time "
                                         "(job name and instance), in the one group it writes them to",
            "IAM5[Resource::*]": "cloudwatch:PutMetricData takes no resource scope (AWS accepts only '*'); "
                                 "ecr:GetAuthorizationToken neither",
        })
        return role
