"""The CDK app `cdk.json` runs: one `ModelStack` per model folder under `functions/`.

Context keys (`-c key=value` or cdk.json): `mlfn:functions` (folder, default `functions`), `mlfn:stage`
(default `dev`), `mlfn:model` (one model folder instead of all), `mlfn:target` (override every model's target),
`mlfn:imageUri` (with `mlfn:model`: an ECR image instead of an asset), plus those in docs/infra.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlfn.runtime.errors import MlfnError
from mlfn.runtime.spec import CONFIG_FILE, load_spec

from .synth import make_app, synth_app


def model_dirs(root: Path) -> list[Path]:
    """Sub-folders holding a model.onnx or an mlfn.toml, sorted by name."""
    if not root.is_dir():
        raise MlfnError(f"{root}: no such folder (set the CDK context key mlfn:functions)")
    return sorted(
        d for d in root.iterdir() if d.is_dir() and ((d / "model.onnx").exists() or (d / CONFIG_FILE).exists())
    )


def build(app_context: dict[str, str] | None = None) -> int:
    from .stacks import ModelStack

    app = make_app(context=app_context)
    get = app.node.try_get_context
    stage = str(get("mlfn:stage") or "dev")
    target = get("mlfn:target") or None
    image_uri = get("mlfn:imageUri") or None
    only = get("mlfn:model")
    dirs = [Path(only)] if only else model_dirs(Path(str(get("mlfn:functions") or "functions")))
    if image_uri and not only:
        raise MlfnError("mlfn:imageUri needs mlfn:model: one image belongs to one model")
    for directory in dirs:
        try:
            spec = load_spec(directory)
            if stage not in spec.settings.stages:
                print(f"mlfn: skipping {spec.name}: stage {stage!r} is not in its stages", file=sys.stderr)
                continue
            ModelStack(app, spec=spec, image_uri=image_uri, stage=stage, target=target)
        except MlfnError as exc:  # say which of the folders it is
            raise MlfnError(f"{directory}: {exc}") from None
    synth_app(app)
    return 0


def main() -> int:
    try:
        return build()
    except MlfnError as exc:
        print(f"mlfn synth: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
