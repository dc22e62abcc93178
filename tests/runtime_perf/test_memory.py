"""Memory of a real `mlfn serve` process around large requests (issue 19): a 5.6 MB CSV of 700,000 rows is refused
with 413 before the model runs (it used to be answered with 99 MB of JSON, the process peaking near 900 MB and
staying near 300 MB), and after a request at the row limit the process gives its memory back.

RSS and its peak (VmHWM) are read from /proc/PID/status of the server process; the figures are printed (run with
`-s` to see them).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import FUNCTIONS, environment

LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
ROW = b"5,3,1,0\n"
CSV = {"content-type": "text/csv"}
MAX_ROWS = 100_000  # the default of [server] max_rows


def memory_mb(pid: int) -> dict[str, int]:
    """Resident memory now and at its peak, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(key + r":\s+(\d+)", status).group(1)) // 1024  # type: ignore[union-attr]
            for key in ("VmRSS", "VmHWM")}


@pytest.fixture(params=["lean", "uvicorn"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], httpx.Client]]:
    """`mlfn serve functions/iris --port 0` in its own process, and a client for it."""
    with environment(MLFN_HTTP=request.param, PYTHONUNBUFFERED="1"):
        proc = subprocess.Popen([str(Path(sys.executable).parent / "mlfn"), "serve", str(FUNCTIONS / "iris"),
                                 "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    assert proc.stderr is not None
    threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True).start()
    deadline = time.monotonic() + 60
    port = None
    while port is None and time.monotonic() < deadline and proc.poll() is None:
        found = [m for line in list(lines) if (m := LISTENING.search(line))]
        port = int(found[0].group(1)) if found else None
        time.sleep(0.02)
    assert port is not None, "\n".join(lines)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        while client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline and proc.poll() is None, "\n".join(lines)
            time.sleep(0.05)
        for _ in range(20):  # warm: the figures below are of large requests, not of a first call
            assert client.post("/invocations", content=ROW, headers=CSV).status_code == 200
        yield proc, client
    proc.terminate()
    assert proc.wait(30) == 0, "\n".join(lines)


def test_a_request_of_too_many_rows_is_refused_and_memory_comes_back_down(served: tuple[Any, httpx.Client]) -> None:
    proc, client = served
    before = memory_mb(proc.pid)
    refused = client.post("/invocations", content=ROW * 700_000, headers=CSV)  # 5.6 MB: under the body limit
    assert refused.status_code == 413, refused.text[:300]
    assert "send fewer rows per request" in refused.json()["error"]
    time.sleep(0.5)
    after_refused = memory_mb(proc.pid)
    answered = client.post("/invocations", content=ROW * MAX_ROWS, headers=CSV)
    assert answered.status_code == 200 and len(answered.json()["predictions"]) == MAX_ROWS
    del answered
    time.sleep(0.5)
    after = memory_mb(proc.pid)
    print(f"\nRSS before {before['VmRSS']} MB; after 700,000 rows (413) {after_refused['VmRSS']} MB; after "
          f"{MAX_ROWS} rows (200) {after['VmRSS']} MB; peak {after['VmHWM']} MB")
    assert after_refused["VmHWM"] - before["VmRSS"] < 300, (before, after_refused)
    assert after_refused["VmRSS"] - before["VmRSS"] < 60, (before, after_refused)
    assert after["VmRSS"] - before["VmRSS"] < 60, (before, after)
