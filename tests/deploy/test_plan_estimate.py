"""`mlfn deploy` prints the estimated monthly cost of what it deployed when mlfn.toml sets [plan]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # a deploy synthesizes its stack (jsii + node)
IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"


def test_deploy_prints_the_monthly_estimate_at_the_planned_traffic(cli: Any, h: Any, tmp_path: Path) -> None:
    model = h.copy_model(IRIS, tmp_path / "planned", name="planned",
                         extra_toml="[plan]\nrequests_per_month = 2500000\n")
    done = cli("deploy", str(model), "--local")
    line = next((x for x in done.stderr.splitlines() if x.startswith("estimated monthly cost")), "")
    assert line.startswith("estimated monthly cost at 2,500,000 requests ([plan] in mlfn.toml): $"), done.stderr
    assert "for lambda x86_64 1024 MB" in line and "dated 2026-12-04" in line
    cli("destroy", "planned", "--local", "--yes")
