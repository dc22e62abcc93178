"""Synthesize in-process: the app every mlfn synth uses (feature flags + cdk-nag) and `synth_model` for the CLI."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from mlfn.runtime.errors import MlfnError
from mlfn.runtime.spec import load_spec

from .nag import REPORT_FILE, enable_nag
from .stacks import ModelStack

FLAGS_FILE = resources.files(__package__).joinpath("cdk_flags.json")  # package data of mlfn.infra


class SynthError(MlfnError):
    """Synth failed: cdk-nag found what nobody acknowledged, or CDK refused the app."""


def feature_flags() -> dict[str, Any]:
    """The feature flags `cdk init` writes (the same as cdk.json's), so in-process synth matches `cdk synth`."""
    flags: dict[str, Any] = json.loads(FLAGS_FILE.read_text(encoding="utf-8"))
    return flags


def make_app(outdir: str | Path | None = None, context: dict[str, Any] | None = None) -> cdk.App:
    """An app with mlfn's feature flags and cdk-nag. Without `outdir`, CDK_OUTDIR (set by the CDK CLI) decides."""
    app = cdk.App(outdir=str(outdir) if outdir else None, context={**feature_flags(), **(context or {})})
    enable_nag(app)
    return app


def nag_summary(outdir: str | Path) -> str:
    """`AwsSolutions-IAM5 at Stack/Role/Resource; ...` from the validation report CDK wrote."""
    try:
        report = json.loads((Path(outdir) / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "see the validation report above"
    found = []
    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            places = violation.get("violatingConstructs") or violation.get("violatingResources") or []
            paths = ", ".join(str(r.get("constructPath", "?")) for r in places)
            found.append(f"{violation.get('ruleName')} at {paths}")
    return "; ".join(found) or "see the validation report above"


def synth_app(app: cdk.App) -> cdk.cx_api.CloudAssembly:
    """`app.synth()`, turning a cdk-nag failure into one `SynthError` line that names each finding."""
    try:
        return app.synth()
    except RuntimeError as exc:
        if "ValidationFailed" not in str(exc):
            raise
        raise SynthError(f"validation failed (cdk-nag or CloudFormation checks): {nag_summary(app.outdir)}") from None


def synth_model(
    model_dir: str | Path,
    *,
    image_uri: str | None = None,
    stage: str = "dev",
    outdir: str | Path,
    target: str | None = None,
    context: dict[str, Any] | None = None,
) -> Path:
    """Synthesize one model's stack into `outdir` and return the path of its CloudFormation template."""
    spec = load_spec(model_dir)
    app = make_app(outdir, context)
    stack = ModelStack(app, spec=spec, image_uri=image_uri, stage=stage, target=target)
    synth_app(app)
    return Path(app.outdir) / stack.template_file


def synth_models(models: list[dict[str, Any]], *, outdir: str | Path,
                 context: dict[str, Any] | None = None) -> list[Path]:
    """Synthesize many models' stacks in ONE app run (jsii and CDK start once) and return each template's path, in
    the order given. Each item: `model_dir`, and optionally `image_uri`, `stage` (default dev), `target`."""
    app = make_app(outdir, context)
    stacks = [ModelStack(app, spec=load_spec(m["model_dir"]), image_uri=m.get("image_uri"),
                         stage=m.get("stage") or "dev", target=m.get("target")) for m in models]
    synth_app(app)
    return [Path(app.outdir) / stack.template_file for stack in stacks]
