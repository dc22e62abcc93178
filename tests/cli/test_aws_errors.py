"""An AWS call that fails (here: nothing listens at the endpoint) ends the command with one line and exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def _closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there afterwards
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_aws_is_one_line_not_a_traceback() -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1"}
    env.pop("AWS_PROFILE", None)
    done = subprocess.run([sys.executable, "-m", "mlfn.cli.main", "status", "iris"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlfn status: error: AWS: Could not connect")
