"""`MlfnLambdaModel`: a container-image function, alias `live`, provisioned-concurrency autoscaling, Function URL.

With `[lambda] snapstart = true` the function has SnapStart on published versions, and `live` points at the
function's current (published) version, so every call through the URL resumes from that version's snapshot.

Provisioned concurrency: with `provisioned_max = 0` (the default) the function runs on demand only and no
scalable target is registered (Application Auto Scaling refuses a maximum of 0). With `provisioned_max > 0` a
scalable target spans `provisioned_min..provisioned_max`, target tracking holds utilization at
`target_utilization`, and `[[lambda.schedules]]` move the bounds. Target tracking cannot start from zero
(utilization is undefined without provisioned concurrency), so with `provisioned_min = 0` a schedule is what
raises it; between schedules the function still serves on demand.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from .base import MlfnModel
from .image import MODEL_DIR_IN_IMAGE, asset_options
from .monitoring import ModelMetrics, ModelMonitoring, retained_log_group
from .rollout import LambdaRollout

ALIAS_NAME = "live"
# Headers a browser needs to send a SigV4-signed request (CORS only applies when origins are configured).
CORS_HEADERS = ["content-type", "authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"]


class MlfnLambdaModel(MlfnModel):
    """One model as a Lambda function with a Function URL on its `live` alias."""

    TARGET = "lambda"

    def _build(self) -> None:
        s = self.spec.settings
        lam = s.lambda_
        arm = lam.architecture == "arm64"

        self.log_group = retained_log_group(self, "Logs", s.logs.retention_days)
        # Its own role instead of AWSLambdaBasicExecutionRole: it may write to its log group and nothing else.
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description=f"mlfn {self.spec.name}: function role (writes its own logs only)")
        self.log_group.grant_write(self.role)

        self.function = lambda_.DockerImageFunction(
            self, "Function",
            code=self._code(arm),
            description=(s.description or f"mlfn model {self.spec.name}")[:256],
            memory_size=lam.memory_mb,
            timeout=cdk.Duration.seconds(lam.timeout_s),
            ephemeral_storage_size=cdk.Size.mebibytes(lam.ephemeral_storage_mb),
            architecture=lambda_.Architecture.ARM_64 if arm else lambda_.Architecture.X86_64,
            reserved_concurrent_executions=None if lam.reserved_concurrency < 0 else lam.reserved_concurrency,
            environment={"MLFN_MODEL_DIR": MODEL_DIR_IN_IMAGE},
            role=self.role,
            log_group=self.log_group,
            # SnapStart: the version the alias points at is initialised once when published and restored from its
            # snapshot; the image's runtime (awslambdaric) makes the Runtime API's restore calls.
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if lam.snapstart else None,
        )
        if lam.snapstart:  # CDK warns that SnapStart needs a published version: `live` is on one, just below
            cdk.Annotations.of(self.function).acknowledge_warning(
                "@aws-cdk/aws-lambda:snapStartRequirePublish", "the live alias is on the function's current version")
        self.alias = lambda_.Alias(
            self, "Alias", alias_name=ALIAS_NAME, version=self.function.current_version,
            provisioned_concurrent_executions=lam.provisioned_min or None,
        )
        self.scaling = self._autoscaling()
        self.rollout = None
        if s.rollout.strategy != "all_at_once":
            self.rollout = LambdaRollout(
                self, "Rollout", alias=self.alias, version=self.function.current_version, rollout=s.rollout,
                model_dir=self.spec.directory, model_name=self.spec.name, timeout_s=lam.timeout_s,
                log_retention_days=s.logs.retention_days)

        none = s.auth.type == "none"
        cors = None
        if s.auth.cors_origins:
            cors = lambda_.FunctionUrlCorsOptions(
                allowed_origins=list(s.auth.cors_origins),
                allowed_methods=[lambda_.HttpMethod.GET, lambda_.HttpMethod.POST],
                allowed_headers=CORS_HEADERS,
                max_age=cdk.Duration.hours(1),
            )
        self.url = self.alias.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.NONE if none else lambda_.FunctionUrlAuthType.AWS_IAM, cors=cors
        )
        self.invoke_url = self.url.url
        self.auth_type = "NONE" if none else "AWS_IAM"

        self.monitoring = ModelMonitoring(self, "Monitoring", title=f"mlfn {self.spec.name}", metrics=ModelMetrics(
            invocations=self.alias.metric_invocations(period=cdk.Duration.minutes(5)),
            errors=self.alias.metric_errors(period=cdk.Duration.minutes(5)),
            throttles=self.alias.metric_throttles(period=cdk.Duration.minutes(5)),
            latency_p99=self.alias.metric_duration(statistic="p99", period=cdk.Duration.minutes(5)),
            latency_threshold=lam.timeout_s * 1000 * 0.8,
        ))

    def _code(self, arm: bool) -> lambda_.DockerImageCode:
        if self.image is not None:
            repository = self._repository()
            return lambda_.DockerImageCode.from_ecr(repository, tag_or_digest=self.image.reference)
        from aws_cdk.aws_ecr_assets import Platform

        platform = Platform.LINUX_ARM64 if arm else Platform.LINUX_AMD64
        return lambda_.DockerImageCode.from_image_asset(**asset_options(self, self.spec, self.TARGET, platform))

    def _autoscaling(self) -> lambda_.IScalableFunctionAttribute | None:
        lam = self.spec.settings.lambda_
        if lam.provisioned_max == 0:
            return None
        scaling = self.alias.add_auto_scaling(min_capacity=lam.provisioned_min, max_capacity=lam.provisioned_max)
        scaling.scale_on_utilization(utilization_target=lam.target_utilization)
        for i, sched in enumerate(lam.schedules):
            scaling.scale_on_schedule(
                sched.name or f"Schedule{i}", schedule=appscaling.Schedule.expression(sched.cron),
                min_capacity=sched.min, max_capacity=sched.max,
            )
        return scaling

    def outputs(self) -> dict[str, str]:
        out = {"FunctionName": self.function.function_name, "AliasName": ALIAS_NAME}
        if self.rollout is not None:  # where `mlfn status` and `mlfn rollback` find the rollout's deployments
            out["RolloutApplication"] = self.rollout.group.application.application_name
            out["RolloutDeploymentGroup"] = self.rollout.group.deployment_group_name
        return out

    def invoker_statements(self) -> list[iam.PolicyStatement]:
        """Since October 2025 an AWS_IAM Function URL's caller needs both `lambda:InvokeFunctionUrl` and
        `lambda:InvokeFunction`, the latter only through the URL (AWS: "Control access to Lambda function URLs").
        Both on the alias the URL is on; its ARN carries the stack's partition."""
        if self.auth_type != "AWS_IAM":
            return []
        arn = self.alias.function_arn
        return [
            iam.PolicyStatement(sid="InvokeFunctionUrl", actions=["lambda:InvokeFunctionUrl"], resources=[arn],
                                conditions={"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}),
            iam.PolicyStatement(sid="InvokeFunctionThroughUrl", actions=["lambda:InvokeFunction"], resources=[arn],
                                conditions={"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}),
        ]
