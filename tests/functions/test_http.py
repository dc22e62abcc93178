"""The documented curl calls against each bundled function served by the container entry point over real HTTP."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from mlfn.cli.local.processes import stop

from .conftest import FUNCTIONS

START_TIMEOUT_S = 60


def _listening_url(process: subprocess.Popen[str]) -> str:
    """Read the server's stderr until it says where it listens (bounded in time)."""
    assert process.stderr is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if match:
            return match.group(1)
    raise AssertionError("server did not start:\n" + "".join(seen))


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/ping", timeout=5).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"{url}/ping never answered 200")


@contextlib.contextmanager
def serving(name: str, *, cli: bool = False) -> Iterator[str]:
    """`python -m mlfn.runtime.server serve` (or, `cli`, `mlfn serve`) on functions/<name>, port 0; yields its URL
    once /ping says ready."""
    command = [sys.executable, "-m", "mlfn.runtime.server", "serve", "--model-dir", str(FUNCTIONS / name),
               "--host", "127.0.0.1", "--port", "0"]
    if cli:
        command = [sys.executable, "-m", "mlfn.cli.main", "serve", str(FUNCTIONS / name), "--port", "0"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        url = _listening_url(process)
        threading.Thread(target=process.stderr.read, daemon=True).start()  # type: ignore[union-attr]
        _wait_ready(url)
        yield url
    finally:
        stop(process, timeout_s=30)


def test_iris_v1_example_over_http() -> None:
    with serving("iris") as url:
        body = (FUNCTIONS / "iris" / "example.json").read_bytes()
        reply = httpx.post(f"{url}/v1/models/iris:predict", content=body,
                           headers={"content-type": "application/json"}, timeout=30)
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    assert [p["output_label"] for p in predictions] == ["setosa", "versicolor", "virginica"]
    assert sum(predictions[0]["output_probability"].values()) == pytest.approx(1.0, abs=1e-5)


def test_digits_png_uploads_over_http() -> None:
    with serving("digits") as url:
        answers = {}
        for png in sorted((FUNCTIONS / "digits" / "examples").glob("*.png")):
            reply = httpx.post(f"{url}/invocations", content=png.read_bytes(),
                               headers={"content-type": "image/png"}, timeout=30)
            assert reply.status_code == 200, reply.text
            answers[int(png.stem)] = reply.json()["predictions"][0]["digit"]
        bad = httpx.post(f"{url}/invocations", content=b"\x89PNG\r\n\x1a\n" + b"\0" * 10,
                         headers={"content-type": "image/png"}, timeout=30)
    assert answers == {0: 0, 3: 3, 7: 7}
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/json")
    assert "not a picture this function reads: expected a PNG or JPEG" in bad.json()["error"]
