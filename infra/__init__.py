"""mlfn's infrastructure as code: one CDK construct per target and the app `cdk.json` runs.

    from mlfn.infra import MlfnLambdaModel, ModelStack
    MlfnLambdaModel(stack, "Iris", model_dir="functions/iris")

Names are imported lazily: `import mlfn.infra` does not start jsii.
"""

from __future__ import annotations

import os
from typing import Any

# jsii's Node.js banner about end-of-life Node versions would bury synth output (see docs/infra.md).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

_EXPORTS = {
    "MlfnLambdaModel": "lambda_model",
    "MlfnSageMakerModel": "sagemaker_model",
    "MlfnEcsGpuModel": "ecs_model",
    "MlfnModel": "base",
    "ModelStack": "stacks",
    "stack_name": "naming",
    "synth_model": "synth",
    "make_app": "synth",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
