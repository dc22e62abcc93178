"""`mlfn plan` end to end on a bundled model: the table, --json, the chart file, --prices and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _mlfn(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # no AWS credentials: the shipped snapshot is used as is, and nothing leaves the machine
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(cwd / "none"), AWS_CONFIG_FILE=str(cwd / "none"))
    return subprocess.run([sys.executable, "-m", "mlfn.cli.main", *args], capture_output=True, text=True,
                          timeout=180, env=env, cwd=cwd)


def test_plan_prints_a_table_per_target_marks_the_choice_and_writes_the_chart(
        tmp_path: Path, functions_dir: Path) -> None:
    done = _mlfn("plan", str(functions_dir / "iris"), "--p99-ms", "50", "--rps", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for title in ("Lambda (on demand)", "SageMaker real-time", "SageMaker Serverless Inference", "ECS on EC2 GPU"):
        assert title in out
    assert "prices: snapshot prices-us-east-1.json, dated 2026-12-04" in out
    assert "CPU share applied with:" in out and "unpriced" in out
    chosen = [line for line in out.splitlines() if line.startswith("  *")]
    assert len(chosen) == 1 and "MB" in chosen[0]
    # iris answers in well under a millisecond: the cheapest may be Lambda or Serverless Inference (no request fee)
    assert "chosen (p99 <= 50 ms): lambda" in out or "chosen (p99 <= 50 ms): sagemaker-serverless" in out
    assert "from an AWS sample's constants, not an AWS price page: " in out
    assert "third-party transcriptions, not found in AWS's price pages: " in out
    chart = tmp_path / ".mlfn" / "plan" / "iris.svg"
    svg = chart.read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 4 and "Lambda memory size (MB)" in svg


def test_plan_json_and_a_price_file_override(tmp_path: Path, functions_dir: Path) -> None:
    prices = {"region": "test-1", "date": "2030-01-01", "source": "a test", "prices": [
        {"key": "lambda.request", "usd": 1e-6, "unit": "request", "source": "test"},
        {"key": "lambda.x86_64.gb_second", "usd": 1e-4, "unit": "GB-second", "source": "test"},
        {"key": "lambda.arm64.gb_second", "usd": None, "unit": "GB-second", "source": "test: not found"}]}
    (tmp_path / "prices.json").write_text(json.dumps(prices))
    done = _mlfn("plan", str(functions_dir / "iris"), "--json", "--prices", "prices.json",
                 "--requests-per-month", "2000000", "--chart", "c.svg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["prices"]["origin"] == "file prices.json" and plan["prices"]["date"] == "2030-01-01"
    assert plan["traffic"]["requests_per_month"] == 2_000_000
    lam = [o for o in plan["options"] if o["target"] == "lambda"]
    assert all(o["monthly_usd"] is None for o in lam if o["arch"] == "arm64")
    x86 = [o for o in lam if o["arch"] == "x86_64"]
    size128 = next(o for o in x86 if o["memory_mb"] == 128)
    # at least one request's price plus 1 ms at 128 MB per request
    assert size128["per_million_usd"] >= 1.0 + 1e6 * 0.001 * 0.125 * 1e-4 - 1e-9
    assert plan["chosen"]["arch"] == "x86_64" and plan["chart"] == "c.svg"
    assert plan["measurement"]["method"] in ("cgroup2", "cgroup1", "scaled")


@pytest.mark.parametrize(("args", "message"), [
    (("--rps", "-1"), "--rps must be 0 or more"),
    (("--cold-rate", "2"), "--cold-rate must be between 0 and 1"),
    (("--payload", "missing.json"), "--payload missing.json: no such file"),
    (("--prices", "missing.json"), "--prices missing.json: cannot read it as JSON"),
    (("--region", "xx-nowhere-1"), "no price snapshot for region xx-nowhere-1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, functions_dir: Path, args: tuple[str, ...],
                                          message: str) -> None:
    done = _mlfn("plan", str(functions_dir / "iris"), *args, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
