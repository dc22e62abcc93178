"""What every mlfn model construct shares: the spec, the target check, the image source, the outputs."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

from mlfn.runtime.spec import ModelSpec, load_spec

from .checks import InfraError, resolve_target
from .image import EcrImage


class MlfnModel(Construct):
    """Base of `MlfnLambdaModel`, `MlfnSageMakerModel` and `MlfnEcsGpuModel`.

    Give either `spec` (from `mlfn.runtime.spec.load_spec`) or `model_dir`. `image_uri` (alias `image`) is
    an ECR image `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO@sha256:...`, as `mlfn deploy` pushes; without
    it the model is built as an image asset on the runtime base image at deploy time.
    """

    TARGET: ClassVar[str]
    invoke_url: str
    auth_type: str

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        spec: ModelSpec | None = None,
        model_dir: str | Path | None = None,
        image_uri: str | None = None,
        image: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        if (spec is None) == (model_dir is None):
            raise InfraError(f"{type(self).__name__} needs exactly one of spec= or model_dir=")
        self.spec: ModelSpec = spec if spec is not None else load_spec(model_dir)  # type: ignore[arg-type]
        resolve_target(self.spec, self.TARGET)
        uri = image_uri or image
        self.image: EcrImage | None = EcrImage.parse(uri) if uri else None
        self._build()

    def _repository(self) -> ecr.IRepository:
        """The ECR repository of the image given by URI (construct id "Repository")."""
        assert self.image is not None
        # The partition comes from the stack (aws, aws-cn, aws-us-gov): an image is pulled within its partition.
        arn = cdk.Stack.of(self).format_arn(service="ecr", region=self.image.region, account=self.image.account,
                                            resource="repository", resource_name=self.image.repository)
        return ecr.Repository.from_repository_attributes(self, "Repository", repository_arn=arn,
                                                         repository_name=self.image.repository)

    def _build(self) -> None:
        """Create the target's resources; set `invoke_url` and `auth_type`."""
        raise NotImplementedError

    def outputs(self) -> dict[str, str]:
        """The target's own stack outputs (names a person needs), beyond InvokeUrl, AuthType and Target."""
        raise NotImplementedError

    def invoker_statements(self) -> list[iam.PolicyStatement]:
        """What a caller's identity policy needs to call `invoke_url` (empty when auth is NONE): the HTTPS front's
        `execute-api:Invoke` by default; Lambda overrides it."""
        front = getattr(self, "front", None)
        return list(front.invoker_statements()) if front is not None else []

    def invoker_policy(self) -> iam.PolicyDocument | None:
        """The ready identity policy for callers of this model (None when no IAM permission is needed)."""
        statements = self.invoker_statements()
        return iam.PolicyDocument(statements=statements) if statements else None
