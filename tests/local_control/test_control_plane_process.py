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
