"""The settings a model directory's `mlfn.toml` may give, with their types, defaults, limits and docs.

Each section is a frozen record (`mlfn.runtime.record`). A field's metadata carries its documentation (`doc`) and its
allowed values (`choices`) or range (`min`, `max`), which `mlfn.runtime.spec` enforces and
`docs/model-directory.md` lists. Nothing here reads files.
"""

from __future__ import annotations

from typing import Any

from .lambda_contract import REQUEST_LIMIT
from .record import field, record


def setting(default: Any, doc: str, **limits: Any) -> Any:
    """A record field with documentation and limits (`choices`, `min`, `max`)."""
    return field(default=default, metadata={"doc": doc, **limits})


TARGETS = ("lambda", "sagemaker", "ecs")


@record
class Schedule:
    """A scheduled change of provisioned capacity (Lambda provisioned concurrency, SageMaker copies)."""

    name: str = setting("", "A name for the schedule (letters, digits, dashes).")
    cron: str = setting("", "When it applies, as an EventBridge cron expression: `cron(0 8 ? * MON-FRI *)`.")
    min: int = setting(0, "Minimum capacity from then on.", min=0)
    max: int = setting(1, "Maximum capacity from then on.", min=0)


@record
class LambdaSettings:
    """`[lambda]`: the function when `target = "lambda"`."""

    memory_mb: int = setting(
        2048, "Memory in MB; the CPU share grows with it (1,769 MB is one vCPU).", min=128, max=10240
    )
    timeout_s: int = setting(30, "Longest one invocation may run, in seconds.", min=1, max=900)
    ephemeral_storage_mb: int = setting(512, "Size of /tmp in MB.", min=512, max=10240)
    architecture: str = setting("x86_64", "Instruction set of the function.", choices=("x86_64", "arm64"))
    reserved_concurrency: int = setting(
        -1, "Most sandboxes the function may run at once; -1 leaves it unreserved.", min=-1, max=10000
    )
    provisioned_min: int = setting(0, "Least provisioned concurrency kept warm (0 scales to zero).", min=0)
    provisioned_max: int = setting(0, "Most provisioned concurrency autoscaling may set.", min=0)
    target_utilization: float = setting(
        0.7, "Provisioned-concurrency utilization that autoscaling tracks.", min=0.1, max=0.9
    )
    schedules: tuple[Schedule, ...] = setting((), "Scheduled provisioned-concurrency bounds (`[[lambda.schedules]]`).")
    idle_timeout_s: int = setting(
        300, "Local emulator only: seconds an idle sandbox lives before it is reclaimed.", min=1, max=86400
    )
    snapstart: bool = setting(
        False, "Lambda SnapStart: init runs once when a version is published and new sandboxes resume from its "
        "snapshot (the `live` alias points at that version). Not with provisioned concurrency or "
        "`ephemeral_storage_mb` over 512, as on AWS."
    )


@record
class SageMakerSettings:
    """`[sagemaker]`: the endpoint when `target = "sagemaker"`."""

    instance_type: str = setting("ml.m5.large", "Instance type hosting the inference component.")
    serverless: bool = setting(False, "Use SageMaker Serverless Inference instead (CPU only, no GPU).")
    serverless_memory_mb: int = setting(
        2048, "Serverless memory in MB, a multiple of 1024.", choices=(1024, 2048, 3072, 4096, 5120, 6144)
    )
    serverless_max_concurrency: int = setting(5, "Serverless concurrent invocations.", min=1, max=200)
    min_instances: int = setting(0, "Least instances (0 lets the endpoint scale to zero).", min=0)
    max_instances: int = setting(1, "Most instances managed instance scaling may run.", min=1)
    min_copies: int = setting(0, "Least copies of the model (0 scales to zero).", min=0)
    max_copies: int = setting(2, "Most copies of the model.", min=1)
    invocations_per_copy: int = setting(
        20, "Invocations per copy per minute that autoscaling tracks.", min=1
    )
    cpus_per_copy: float = setting(1.0, "vCPUs reserved for each copy.", min=0.25)
    memory_per_copy_mb: int = setting(1024, "Memory reserved for each copy, in MB.", min=128)
    gpus_per_copy: int = setting(0, "Accelerators reserved for each copy.", min=0, max=8)


@record
class EcsSettings:
    """`[ecs]`: the GPU service when `target = "ecs"`."""

    instance_type: str = setting("g5.xlarge", "EC2 GPU instance type of the capacity provider.")
    gpus: int = setting(1, "GPUs per task.", min=0, max=8)
    cpu: int = setting(2048, "CPU units per task (1,024 per vCPU).", min=256)
    memory_mb: int = setting(8192, "Memory per task in MB.", min=512)
    min_tasks: int = setting(0, "Least tasks (0 scales to zero when idle).", min=0)
    max_tasks: int = setting(2, "Most tasks.", min=1)
    requests_per_task: int = setting(100, "Requests per task per minute that autoscaling tracks.", min=1)
    idle_minutes: int = setting(15, "Minutes without requests before the service scales to zero.", min=1)


@record
class BatchingSettings:
    """`[batching]`: dynamic batching in container targets (never on Lambda)."""

    max_batch_size: int = setting(
        1, "Most rows one batched run may stack (server targets only); 1 (off) suits light models, whose cost is "
        "JSON, not compute. A lone request never waits: only requests that arrive together are combined.",
        min=1, max=4096
    )
    max_wait_ms: float = setting(2.0, "Longest a request waits for others to join its batch.", min=0, max=1000)


@record
class AuthSettings:
    """`[auth]`: who may call the endpoint."""

    type: str = setting(
        "iam", "`iam` signs calls with SigV4 (AWS_IAM); `none` makes the URL public.", choices=("iam", "none")
    )
    cors_origins: tuple[str, ...] = setting((), "Origins browsers may call from; empty turns CORS off.")


@record
class ServerSettings:
    """`[server]`: the runtime inside the image."""

    max_body_bytes: int = setting(
        REQUEST_LIMIT, "Largest request body accepted; larger ones get 413.", min=1, max=1 << 30
    )
    max_rows: int = setting(
        100_000, "Most rows (instances, CSV lines, entries along the batch dimension) one request may hold; more "
        "get 413 asking for fewer rows per request. Bounds the memory one request takes: answers are often far "
        "larger than the rows sent.", min=1, max=1 << 30
    )
    intra_op_threads: int = setting(
        0, "onnxruntime intra-op threads; 0 derives them from the CPU share.", min=0, max=256
    )
    graph_optimization: str = setting(
        "all", "onnxruntime graph optimization level.", choices=("disable", "basic", "extended", "all")
    )
    providers: tuple[str, ...] = setting(
        (), "onnxruntime execution providers in order of preference; empty: CUDA if present, then CPU."
    )


@record
class LogSettings:
    """`[logs]`: where the function's logs go."""

    retention_days: int = setting(
        30,
        "Days CloudWatch keeps the logs.",
        choices=(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                 3288, 3653),
    )


@record
class PlanSettings:
    """`[plan]`: the traffic `mlfn plan` prices and `mlfn deploy` estimates a monthly cost for."""

    requests_per_month: int = setting(
        0, "Planned requests a month; when set, `mlfn deploy` prints the estimated monthly cost. 0: not set.", min=0
    )


ROLLOUT_STRATEGIES = ("all_at_once", "canary", "linear")
COMPARISONS = ("GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold",
               "LessThanOrEqualToThreshold")


@record
class RolloutMetric:
    """A CloudWatch metric whose alarm also stops a rollout (`[[rollout.metrics]]`)."""

    namespace: str = setting("", "CloudWatch namespace of the metric, e.g. `MyApp` (an EMF namespace works).")
    metric: str = setting("", "Metric name.")
    dimensions: tuple[str, ...] = setting((), "Dimensions as `Name=Value` strings; empty: none.")
    statistic: str = setting(
        "Sum", "Statistic over each period: `SampleCount`, `Average`, `Sum`, `Minimum`, `Maximum` or `pNN`.")
    threshold: float = setting(0.0, "Threshold the statistic is compared with.")
    comparison: str = setting("GreaterThanThreshold", "How a datapoint breaches.", choices=COMPARISONS)


@record
class RolloutSettings:
    """`[rollout]`: how a new version takes traffic, and the alarms that roll it back."""

    strategy: str = setting(
        "all_at_once", "`all_at_once` moves all traffic at once; `canary` moves `percent` first, then the rest "
        "after `interval_minutes`; `linear` moves `percent` more every `interval_minutes` (on target ecs: "
        "ECS's CANARY/LINEAR deployment, `percent` at least 3 for linear, `interval_minutes` at most 1440).",
        choices=ROLLOUT_STRATEGIES,
    )
    percent: int = setting(10, "Traffic share the new version takes first (canary) or per step (linear).",
                           min=1, max=99)
    interval_minutes: int = setting(5, "Minutes between traffic shifts.", min=1)
    error_rate_percent: float = setting(
        5.0, "Rolls back when more than this share of the model's calls answer 5xx in a minute (while "
        "the new version takes traffic); 0: no rate alarm.", min=0, max=100)
    error_count: int = setting(
        0, "Rolls back when at least this many calls answer 5xx (or, on Lambda, end in a function "
        "error) in a minute; 0: no count alarm.",
        min=0)
    p99_ms: float = setting(
        0.0, "Rolls back when the model's p99 latency in a minute is above this (ms); 0: 80% of the "
        "timeout.",
        min=0)
    evaluation_periods: int = setting(
        1, "Breaching one-minute periods (of as many) that fire a rollback alarm.", min=1, max=60)
    metrics: tuple[RolloutMetric, ...] = setting((), "More alarms that stop the rollout (`[[rollout.metrics]]`).")


@record
class BatchSettings:
    """`[batch]`: how `mlfn batch` and the stack's engines (Batch Transform, Distributed Map) score a dataset."""

    records_per_call: int = setting(64, "Records sent in one call (Distributed Map `MaxItemsPerBatch`).", min=1,
                                    max=100000)
    max_payload_mb: int = setting(
        6, "Largest body of one call in MB (Batch Transform `MaxPayloadInMB`; a Distributed Map batch stays under "
        "256 KB whatever this says).", min=1, max=100)
    concurrency: int = setting(
        0, "Calls in flight: Batch Transform `MaxConcurrentTransforms` per instance, Distributed Map "
        "`MaxConcurrency` (at most `lambda.reserved_concurrency` when that is set). 0: automatic (SageMaker "
        "chooses; the map takes `lambda.reserved_concurrency`, else 10; `mlfn batch` runs 4).", min=0, max=10000)
    instance_type: str = setting("ml.m5.large", "Batch Transform instance type (container targets).")
    instance_count: int = setting(1, "Batch Transform instances (container targets).", min=1, max=100)
    state_machine: bool = setting(
        False, "Define the batch state machine in the model's stack (Lambda: a Distributed Map; SageMaker: a "
        "Batch Transform job); a batch is then one execution of it.")
    bucket: str = setting("", "The S3 bucket the state machine reads inputs from and writes results to (needed "
                              "with `state_machine`: its role may touch that bucket only).")
    max_failed_percent: float = setting(
        100.0, "Percent of records that may fail (each in its object's `.err`) before the job is Failed "
        "(Distributed Map `ToleratedFailurePercentage`).", min=0, max=100)
    timeout_s: int = setting(
        86400, "Longest one batch may run, in seconds (the batch state machine's `TimeoutSeconds`: past it the "
        "execution is `TIMED_OUT`; `mlfn batch --local` stops its job there and `--resume` goes on). At most one "
        "year, a Standard workflow's longest execution.", min=1, max=31536000)


@record
class Settings:
    """The top level of `mlfn.toml`."""

    name: str = setting("", "Endpoint name: lowercase letters, digits and dashes; default: the folder's name.")
    description: str = setting("", "One line describing the model.")
    target: str = setting("lambda", "Where the model runs.", choices=TARGETS)
    model: str = setting("model.onnx", "The ONNX file, relative to the folder.")
    hooks: str = setting("", "A Python file in the folder with `preprocess`/`postprocess`; empty: none.")
    gpu: bool = setting(False, "The model needs a GPU (refused on Lambda).")
    stages: tuple[str, ...] = setting(
        ("dev", "prod"), "Stages this model may be deployed to (`mlfn deploy --stage`); each is its own stack."
    )
    lambda_: LambdaSettings = field(default_factory=LambdaSettings, metadata={"toml": "lambda"})
    sagemaker: SageMakerSettings = field(default_factory=SageMakerSettings)
    ecs: EcsSettings = field(default_factory=EcsSettings)
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    logs: LogSettings = field(default_factory=LogSettings)
    plan: PlanSettings = field(default_factory=PlanSettings)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
