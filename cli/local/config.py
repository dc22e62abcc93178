"""What the data plane is told about each deployed thing: plain, JSON-persistable settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .function_urls import url_id

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
LAMBDA_HANDLER = "mlfn.runtime.lambda_handler.handler"
AUTH_TYPES = ("AWS_IAM", "NONE")
CONTAINER_KINDS = ("sagemaker", "ecs")


def _check_auth(auth_type: str) -> str:
    auth = {"iam": "AWS_IAM", "none": "NONE"}.get(auth_type.lower(), auth_type.upper())
    if auth not in AUTH_TYPES:
        raise ValueError(f"auth_type must be one of {', '.join(AUTH_TYPES)}, got {auth_type!r}")
    return auth


@dataclass
class FunctionConfig:
    """A Lambda function (one alias) behind a Function URL."""

    name: str
    model_dir: str
    qualifier: str = "live"
    memory_mb: int = 2048
    timeout_s: float = 30.0
    reserved: int = -1  # -1: unreserved (capped by the emulator's account concurrency)
    provisioned: int = 0
    auth_type: str = "AWS_IAM"
    idle_s: float = 300.0
    region: str = REGION
    account: str = ACCOUNT
    version: str = "1"
    handler: str = LAMBDA_HANDLER
    task_root: str = ""  # LAMBDA_TASK_ROOT and first PYTHONPATH entry; empty: the model directory
    command: list[str] = field(default_factory=list)  # empty: python -m awslambdaric <handler>
    env: dict[str, str] = field(default_factory=dict)
    image: str = ""  # the function's ImageUri: its sandboxes run that image when it can be isolated (image_rootfs)
    image_command: list[str] = field(default_factory=list)  # ImageConfig.Command: replaces the image's CMD (handler)
    cors: dict[str, Any] | None = None  # the Function URL's Cors (AllowOrigins, AllowMethods, AllowHeaders, ...)
    port: int = 0  # the gateway listener of this function's URL; 0 until assigned
    snapstart: bool = False  # SnapStart on the version: init once at registration, sandboxes restored from it
    labels: dict[str, str] = field(default_factory=dict)  # the image's labels (com.amazonaws.lambda.feature.snapstart)
    public: bool = True  # has a Function URL (a gateway port); False: served to the Invoke API only
    weights: dict[str, float] = field(default_factory=dict)  # the alias's RoutingConfig: other version -> share

    def __post_init__(self) -> None:
        self.auth_type = _check_auth(self.auth_type)
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError(f"memory_mb must be from 128 to 10240, got {self.memory_mb}")
        if not 0 < self.timeout_s <= 900:
            raise ValueError(f"timeout_s must be above 0 and at most 900, got {self.timeout_s}")
        if self.reserved != -1 and self.reserved < 0:
            raise ValueError(f"reserved must be -1 (unreserved) or at least 0, got {self.reserved}")
        if self.snapstart and self.provisioned:
            raise ValueError("snapstart cannot be combined with provisioned concurrency (Lambda SnapStart does not "
                             "support it)")
        if sum(self.weights.values()) > 1 or any(not 0 <= w <= 1 for w in self.weights.values()):
            raise ValueError(f"weights must be from 0 to 1 and add up to at most 1, got {self.weights}")
        if self.reserved != -1 and self.provisioned > self.reserved:
            raise ValueError(f"provisioned ({self.provisioned}) must be at most reserved ({self.reserved})")

    @property
    def key(self) -> str:
        return f"lambda:{self.name}:{self.qualifier}"

    @property
    def url_id(self) -> str:
        return url_id("lambda", self.account, self.region, self.name, self.qualifier)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}:{self.qualifier}"

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {"type": "lambda", **dataclasses.asdict(self)}


# A Batch Transform job's container (`transform_runner`): it lives as long as its job, so it is never saved for the
# next data plane (a job cut short by a restart is Failed; nothing would release it). Never an endpoint name:
# SageMaker names take no dots.
TRANSFORM_PREFIX = "transform."


@dataclass
class ContainerConfig:
    """A SageMaker endpoint (inference component) or ECS service running the runtime's `serve` process."""

    name: str
    model_dir: str
    kind: str = "sagemaker"
    auth_type: str = "AWS_IAM"
    idle_s: float = 900.0
    memory_mb: int = 2048
    region: str = REGION
    account: str = ACCOUNT
    command: list[str] = field(default_factory=list)  # empty: python -m mlfn.runtime.server serve --port {port}
    env: dict[str, str] = field(default_factory=dict)
    image: str = ""  # the model's or task's image: its instances run that image when it can be isolated
    ready_timeout_s: float = 180.0  # SageMaker allows 3 minutes for a healthy /ping
    request_timeout_s: float = 60.0  # SageMaker's /invocations limit
    # SageMaker: the stack's REST front (`rest_front.front_of_template`) that non-runtime paths go through; empty:
    # every POST answers as InvokeEndpoint does
    front: dict[str, Any] = field(default_factory=dict)
    # the stack's ids its fronts' metrics carry (`front_metrics`): ECS `ApiId`, `Stage`, `LoadBalancer`, `TargetGroup`
    metric_dimensions: dict[str, str] = field(default_factory=dict)
    cluster: str = ""  # ECS: the service's cluster, whose desired count the front follows (0: the ALB's 503)
    port: int = 0

    def __post_init__(self) -> None:
        self.auth_type = _check_auth(self.auth_type)
        if self.kind not in CONTAINER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(CONTAINER_KINDS)}, got {self.kind!r}")

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def saved(self) -> bool:
        """Whether the data plane keeps it across a restart (everything but a transform job's container)."""
        return not self.name.startswith(TRANSFORM_PREFIX)

    @property
    def url_id(self) -> str:
        return url_id(self.kind, self.account, self.region, self.name)

    @property
    def log_group(self) -> str:
        if self.kind == "sagemaker":
            return f"/aws/sagemaker/Endpoints/{self.name}"
        return f"/ecs/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {"type": "container", **dataclasses.asdict(self)}


def config_from_json(data: dict[str, Any]) -> FunctionConfig | ContainerConfig:
    data = dict(data)
    kind = data.pop("type")
    return FunctionConfig(**data) if kind == "lambda" else ContainerConfig(**data)
