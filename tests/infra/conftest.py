"""Model directories for every target and ONE synthesized app holding all their stacks.

jsii runs one Node.js process per Python process and a synth costs seconds, so the stacks the assertions read
are built once per session (with cdk-nag on, exactly as `mlfn synth` and `cdk synth` run it) and each test
reads its stack's template with `Template.from_json`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "functions" / "iris" / "model.onnx"
IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlfn/iris@sha256:" + "ab" * 32

# name -> mlfn.toml of each test model directory
MODELS: dict[str, str] = {
    "lam-default": 'target = "lambda"\n',
    "lam-public": """target = "lambda"
[lambda]
memory_mb = 3008
timeout_s = 20
ephemeral_storage_mb = 1024
architecture = "arm64"
reserved_concurrency = 10
provisioned_min = 1
provisioned_max = 4
target_utilization = 0.6
[[lambda.schedules]]
name = "workday"
cron = "cron(0 8 ? * MON-FRI *)"
min = 2
max = 4
[auth]
type = "none"
cors_origins = ["https://example.com"]
[logs]
retention_days = 7
""",
    "lam-snapstart": """target = "lambda"
[lambda]
snapstart = true
""",
    "lam-canary": """target = "lambda"
[rollout]
strategy = "canary"
percent = 20
interval_minutes = 2
error_count = 3
p99_ms = 400
[[rollout.metrics]]
namespace = "Shop"
metric = "BadAnswers"
dimensions = ["Model=lam-canary"]
statistic = "p90"
threshold = 4
""",
    "lam-linear": """target = "lambda"
[rollout]
strategy = "linear"
percent = 10
interval_minutes = 1
""",
    "sm-rollout": """target = "sagemaker"
[sagemaker]
min_copies = 1
max_copies = 4
[rollout]
strategy = "canary"
percent = 60
interval_minutes = 90
""",
    "ecs-canary": """target = "ecs"
gpu = true
[ecs]
min_tasks = 0
max_tasks = 2
requests_per_task = 40
[rollout]
strategy = "canary"
percent = 20
interval_minutes = 7
error_count = 5
p99_ms = 2500
""",
    "ecs-linear": """target = "ecs"
gpu = true
[rollout]
strategy = "linear"
percent = 25
interval_minutes = 3
""",
    "sm-gpu": """target = "sagemaker"
gpu = true
[sagemaker]
instance_type = "ml.g5.xlarge"
gpus_per_copy = 1
min_copies = 0
max_copies = 3
max_instances = 2
invocations_per_copy = 30
""",
    "sm-serverless": """target = "sagemaker"
[sagemaker]
serverless = true
serverless_memory_mb = 3072
serverless_max_concurrency = 8
""",
    "lam-batch": """target = "lambda"
[lambda]
reserved_concurrency = 8
[batch]
state_machine = true
bucket = "scores"
records_per_call = 50
max_failed_percent = 5
timeout_s = 7200
""",
    "sm-batch": """target = "sagemaker"
[batch]
state_machine = true
bucket = "scores"
records_per_call = 100
max_payload_mb = 10
concurrency = 4
instance_type = "ml.c5.xlarge"
instance_count = 2
""",
    "ecs-gpu": """target = "ecs"
gpu = true
[ecs]
instance_type = "g5.xlarge"
gpus = 1
min_tasks = 0
max_tasks = 3
requests_per_task = 50
idle_minutes = 20
""",
    "ecs-batch": """target = "ecs"
gpu = true
[ecs]
instance_type = "g5.xlarge"
gpus = 1
[batch]
state_machine = true
bucket = "scores"
instance_type = "ml.g5.xlarge"
""",
}


def _tiny_onnx(path: Path) -> None:
    """A 4-feature classifier: the iris model when engineer C's functions/iris is there, else a fresh one."""
    if IRIS.exists():
        shutil.copyfile(IRIS, path)
        return
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).random((30, 4), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype(int)
    model = to_onnx(LogisticRegression().fit(x, y), x[:1], options={"zipmap": False}, target_opset=17)
    path.write_bytes(model.SerializeToString())


@pytest.fixture(scope="session")
def make_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """Write a model directory `<tmp>/<name>` with the tiny model and the given mlfn.toml body."""
    base = tmp_path_factory.mktemp("models")
    onnx = base / "tiny.onnx"
    _tiny_onnx(onnx)

    def make(name: str, toml: str) -> Path:
        directory = base / name
        directory.mkdir()
        shutil.copyfile(onnx, directory / "model.onnx")
        (directory / "mlfn.toml").write_text(f'name = "{name}"\n{toml}', encoding="utf-8")
        return directory

    return make


@dataclass
class Synthesized:
    templates: dict[str, dict[str, Any]]
    outdir: Path

    def template(self, key: str) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_json(self.templates[key])


@pytest.fixture(scope="session")
def synthesized(make_model_dir: Callable[[str, str], Path], tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Every test model as a ModelStack in one app, synthesized once with cdk-nag (a finding fails here)."""
    from mlfn.infra.stacks import ModelStack
    from mlfn.infra.synth import make_app, synth_app
    from mlfn.runtime.spec import load_spec

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = make_app(outdir)
    specs = {name: load_spec(make_model_dir(name, toml)) for name, toml in MODELS.items()}
    stacks = {name: ModelStack(app, spec=spec) for name, spec in specs.items()}
    # The same models from an ECR image (what `mlfn deploy` passes) instead of an image asset.
    for name in ("lam-default", "sm-gpu", "ecs-gpu", "ecs-batch"):
        stacks[f"{name}+uri"] = ModelStack(app, spec=specs[name], image_uri=IMAGE_URI, stage="prod")
    # A user's own stack holding two models through the constructs (no ModelStack, no outputs of ours).
    import aws_cdk as cdk

    from mlfn.infra import MlfnLambdaModel, MlfnSageMakerModel

    user = cdk.Stack(app, "UserModels")
    MlfnLambdaModel(user, "Iris", model_dir=specs["lam-default"].directory, image=IMAGE_URI)
    MlfnSageMakerModel(user, "Small_One", spec=specs["sm-serverless"])
    stacks["user"] = user
    assembly = synth_app(app)
    templates = {key: assembly.get_stack_by_name(stack.stack_name).template for key, stack in stacks.items()}
    return Synthesized(templates, outdir)
