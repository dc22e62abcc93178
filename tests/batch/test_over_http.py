"""The batch path a deployed model takes: multi-record calls over HTTP to the container server (`mlfn.runtime.server`,
what SageMaker and ECS run), through `invokers.over_http` and the CLI's own HTTP client, CSV and JSON Lines."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlfn.cli.batch.invokers import call, over_http

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="module")
def iris_url() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "mlfn.runtime.server", "serve", "--model-dir",
                             str(FUNCTIONS / "iris"), "--host", "127.0.0.1", "--port", "0"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True).start()
    deadline = time.monotonic() + 60
    port = None
    while port is None and time.monotonic() < deadline and proc.poll() is None:
        port = next((int(m.group(1)) for line in list(lines) if (m := LISTENING.search(line))), None)
        time.sleep(0.05)
    try:
        assert port, "".join(lines)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def send_to(url: str) -> Any:
    endpoint = SimpleNamespace(url=url, auth_type="NONE", target="sagemaker", region="us-east-1", ca_path=None)
    return over_http(endpoint, session=None)


def test_json_lines_and_csv_calls_over_http_one_outcome_per_record(iris_url: str) -> None:
    send = send_to(iris_url)
    deadline = time.monotonic() + 60
    while True:  # the model loads after the port opens
        outcomes = call(send, b"[5.1, 3.5, 1.4, 0.2]\n[1, 2]\n[6.7, 3.0, 5.2, 2.3]\n", 3, "application/jsonlines",
                        True)
        if outcomes[0].status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [o.ok for o in outcomes] == [True, False, True]
    assert b"setosa" in outcomes[0].line and b"virginica" in outcomes[2].line and outcomes[1].status == 400
    csv = call(send, b"5.1,3.5,1.4,0.2\nsepal,petal\n", 2, "text/csv", True)
    assert [o.ok for o in csv] == [True, False] and b"not a CSV row of numbers" in csv[1].line


def test_a_refused_call_fails_each_of_its_records_with_the_reason(iris_url: str) -> None:
    outcomes = call(send_to(iris_url), b"[1]", 1, "application/x-unknown", False)
    assert [o.ok for o in outcomes] == [False] and outcomes[0].status == 415
    assert b"HTTP 415" in outcomes[0].line
    import socket

    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    gone = call(send_to(f"http://127.0.0.1:{closed}"), b"[1]\n[2]\n", 2, "application/jsonlines", True)
    assert [o.ok for o in gone] == [False, False] and b"could not reach" in gone[0].line
