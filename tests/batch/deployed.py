"""A copy of the bundled iris model deployed to an emulator of its own (the real `mlfn` in subprocesses,
tests/deploy/harness.py, an isolated MLFN_HOME), for the tests of a stack's batch engine."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def deployed_iris(root: Path, name: str, extra_toml: str, target: str | None = None,
                  timeout_s: float = 300) -> Iterator[tuple[Any, Path, Any]]:
    """(cli, model folder, client(service) for the emulator); the emulator is stopped at the end."""
    h = SimpleNamespace(**runpy.run_path(str(ROOT / "tests" / "deploy" / "harness.py")))  # not a package
    cli = h.Cli(root / "home", root)
    try:
        model = h.copy_model(h.FUNCTIONS / "iris", root / name, name=name, target=target, extra_toml=extra_toml)
        cli("deploy", str(model), "--local", "--json", timeout=timeout_s)
        url = cli("local", "status", "--json").json()["control_plane"]
        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        yield cli, model, lambda service: session.client(service, endpoint_url=url)
    finally:
        cli.stop_emulator()
