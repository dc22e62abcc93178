"""`ModelStack`: one model, one stack `mlfn-<name>-<stage>`, the construct its target calls for, and the outputs."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from mlfn.runtime.spec import ModelSpec

from .base import MlfnModel
from .batch import MlfnBatchEngine
from .checks import check_stage, resolve_target
from .ecs_model import MlfnEcsGpuModel
from .lambda_model import MlfnLambdaModel
from .naming import stack_name
from .sagemaker_model import MlfnSageMakerModel

INVOKER_POLICY_OUTPUT = "InvokerPolicy"
CONSTRUCTS: dict[str, type[MlfnModel]] = {
    "lambda": MlfnLambdaModel,
    "sagemaker": MlfnSageMakerModel,
    "ecs": MlfnEcsGpuModel,
}


class ModelStack(cdk.Stack):
    """The stack of one model on one stage. `target` overrides the model directory's own.

    With `image_uri` the stack has no assets, so it is synthesized without the bootstrap-version rule: a plain
    CloudFormation deploy (`mlfn deploy`) needs no CDK bootstrap. Extra keyword arguments go to `cdk.Stack`
    (`env`, `synthesizer`, `termination_protection`, ...).
    """

    def __init__(
        self,
        scope: Construct,
        id: str | None = None,
        *,
        spec: ModelSpec,
        image_uri: str | None = None,
        stage: str = "dev",
        target: str | None = None,
        **stack_kwargs: Any,
    ) -> None:
        check_stage(spec, stage)
        chosen = resolve_target(spec, target)
        name = stack_name(spec, stage)
        if image_uri and "synthesizer" not in stack_kwargs:
            stack_kwargs["synthesizer"] = cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False)
        stack_kwargs.setdefault("description", f"mlfn model {spec.name} ({chosen}, stage {stage})")
        super().__init__(scope, id or name, stack_name=name, **stack_kwargs)
        cdk.Tags.of(self).add("mlfn:model", spec.name)
        cdk.Tags.of(self).add("mlfn:stage", stage)
        self.target = chosen
        self.holds_one_model = True  # physical names (the SageMaker endpoint) may be the stack's own
        self.stage = stage
        self.model = CONSTRUCTS[chosen](self, "Model", spec=spec, image_uri=image_uri)
        cdk.CfnOutput(self, "InvokeUrl", value=self.model.invoke_url, description="HTTPS URL of the model")
        cdk.CfnOutput(self, "AuthType", value=self.model.auth_type, description="AWS_IAM: sign requests with SigV4")
        cdk.CfnOutput(self, "Target", value=chosen)
        for key, value in self.model.outputs().items():
            cdk.CfnOutput(self, key, value=value)
        if spec.settings.batch.state_machine:
            self.batch = MlfnBatchEngine(self, "Batch", model=self.model)
            cdk.CfnOutput(self, "BatchStateMachineArn", value=self.batch.state_machine.state_machine_arn,
                          description="mlfn batch: one execution of this state machine scores a dataset in S3")
            cdk.CfnOutput(self, "BatchBucket", value=self.batch.bucket.bucket_name,
                          description="mlfn batch: the one bucket the batch engine reads and writes ([batch] bucket)")
            if self.batch.model_name is not None:
                cdk.CfnOutput(self, "BatchModelName", value=self.batch.model_name,
                              description="mlfn batch: the SageMaker model its Batch Transform jobs run")
        policy = self.model.invoker_policy()
        if policy is not None:
            cdk.CfnOutput(self, INVOKER_POLICY_OUTPUT, value=self.to_json_string(policy.to_json()),
                          description="IAM policy to attach to a caller of InvokeUrl (JSON)")
