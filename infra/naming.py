"""Names derived from a model (importable without starting jsii)."""

from __future__ import annotations

from mlfn.runtime.spec import ModelSpec


def stack_name(spec: ModelSpec, stage: str) -> str:
    """`mlfn-<name>-<stage>`: one stack per model and stage."""
    return f"mlfn-{spec.name}-{stage}"
