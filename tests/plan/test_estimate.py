"""The monthly-cost line `mlfn deploy` prints when mlfn.toml sets [plan] requests_per_month."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlfn.cli.plan.estimate import monthly_line
from mlfn.runtime.spec import load_spec


def _iris(tmp_path: Path, functions_dir: Path, extra: str) -> Path:
    folder = tmp_path / "iris"
    shutil.copytree(functions_dir / "iris", folder)
    with (folder / "mlfn.toml").open("a") as toml:
        toml.write(extra)
    return folder


def test_lambda_line_prices_the_deployed_memory_and_architecture(tmp_path: Path, functions_dir: Path) -> None:
    folder = _iris(tmp_path, functions_dir, '\narchitecture = "arm64"\n\n[plan]\nrequests_per_month = 3000000\n')
    line = monthly_line(load_spec(folder), "lambda", None)
    assert line is not None
    assert line.startswith("estimated monthly cost at 3,000,000 requests ([plan] in mlfn.toml): $")
    assert "for lambda arm64 1024 MB" in line and "prices snapshot prices-us-east-1.json dated 2026-12-04" in line


def test_no_line_without_plan_and_unpriced_instances_say_so(tmp_path: Path, functions_dir: Path) -> None:
    assert monthly_line(load_spec(functions_dir / "iris"), "lambda", None) is None
    folder = _iris(tmp_path, functions_dir, "\n[plan]\nrequests_per_month = 1000\n")
    line = monthly_line(load_spec(folder), "sagemaker", None)  # default ml.m5.large: not in the snapshot
    assert line is not None and "unpriced" in line and "ml.m5.large is not in snapshot" in line
    assert "not estimated (no price snapshot for region eu-north-9" in (monthly_line(load_spec(folder), "lambda",
                                                                                     "eu-north-9") or "")


def test_serverless_line_prices_the_configured_memory_size(tmp_path: Path, functions_dir: Path) -> None:
    folder = _iris(tmp_path, functions_dir, "\n[plan]\nrequests_per_month = 1000000\n\n[sagemaker]\nserverless = true\n"
                                            "serverless_memory_mb = 2048\n")
    line = monthly_line(load_spec(folder), "sagemaker", None)
    assert line is not None and "unpriced" not in line, line
    assert "for sagemaker-serverless serverless 2048 MB" in line
    # at least the REST front ($3.50 per 1M) and 1 ms of 2 GB per request ($0.04 per 1M)
    assert float(line.split(": $")[1].split(" ")[0]) >= 3.54
