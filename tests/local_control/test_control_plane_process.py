"""`python -m mlfn.cli.local.control_plane`: what `mlfn local start` runs. Real process, real port, real boto3."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import boto3


def test_process_publishes_its_address_serves_and_cleans_up(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlfn.cli.local.control_plane", "--port", "0", "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""  # printed once it listens
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else url
        published = json.loads((state / "control-plane.json").read_text())
        assert published == {"url": url, "pid": proc.pid}

        ssm = boto3.client("ssm", endpoint_url=url)
        assert int(ssm.get_parameter(Name="/cdk-bootstrap/hnb659fds/version")["Parameter"]["Value"]) >= 6
        lam = boto3.client("lambda", endpoint_url=url)
        assert lam.list_functions()["Functions"] == []
        assert json.loads((state / "function-urls.json").read_text()) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    assert not (state / "control-plane.json").exists()


def test_taken_port_is_one_line_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mlfn.cli.local.control_plane", "--port", str(port), "--state-dir",
             str(tmp_path)], capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert f"127.0.0.1:{port}" in result.stderr


def test_background_process_start_status_stop(tmp_path: Path) -> None:
    from mlfn.cli.local.control_plane import running_url, start_process, stop_process

    assert running_url(tmp_path) is None
    url = start_process(tmp_path)
    try:
        assert running_url(tmp_path) == url
        assert start_process(tmp_path) == url  # already running: reused, not a second one
        assert boto3.client("lambda", endpoint_url=url).list_functions()["Functions"] == []
    finally:
        assert stop_process(tmp_path) is True
    assert running_url(tmp_path) is None
    assert stop_process(tmp_path) is False


def test_the_process_runs_lambda_deployments_at_its_alarm_time_scale(tmp_path: Path) -> None:
    """CodeDeploy is installed in `mlfn local start`'s process and follows MLFN_ALARM_TIME_SCALE: a canary
    deployment (one AWS minute = 0.6 s here) moves the alias to the target version and succeeds."""
    import os
    import time
    import uuid

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.rollout_canary import create_function, start_deployment
    from mlfn.cli.local.control_plane import client_environment

    env = {**os.environ, "MLFN_ALARM_TIME_SCALE": "0.01"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlfn.cli.local.control_plane", "--port", "0", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        assert url.startswith("http://"), proc.stderr.read() if proc.stderr else url
        creds = client_environment(url)
        kwargs = {"endpoint_url": url, "region_name": creds["AWS_REGION"],
                  "aws_access_key_id": creds["AWS_ACCESS_KEY_ID"],
                  "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"]}
        lam, cd = boto3.client("lambda", **kwargs), boto3.client("codedeploy", **kwargs)
        fn = create_function(lam, boto3.client("iam", **kwargs), f"cd-{uuid.uuid4().hex[:6]}")
        canary = {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 1}}
        started = time.monotonic()
        deployment = start_deployment(cd, fn, canary, [])
        info: dict = {}
        while time.monotonic() - started < 20:
            info = cd.get_deployment(deploymentId=deployment)["deploymentInfo"]
            if info["status"] in ("Succeeded", "Failed", "Stopped"):
                break
            time.sleep(0.1)
        assert info["status"] == "Succeeded", info
        assert time.monotonic() - started < 10  # scaled: an AWS minute, not sixty wall seconds
        assert lam.get_alias(FunctionName=fn.name, Name="live")["FunctionVersion"] == fn.v2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
