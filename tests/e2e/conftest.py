"""End-to-end fixtures: the same CLI harness as tests/deploy (an isolated MLFN_HOME per session, the emulator the CLI
starts, stopped at the end), reused rather than repeated."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("mlfn_deploy_conftest",
                                               Path(__file__).resolve().parents[1] / "deploy" / "conftest.py")
assert _spec and _spec.loader
_deploy = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _deploy
_spec.loader.exec_module(_deploy)

h = _deploy.h
cli = _deploy.cli
