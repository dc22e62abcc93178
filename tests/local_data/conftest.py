"""Fixtures of the data-plane tests: one DataPlane (own thread, state in a temp dir) for the folder, tiny handlers."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlfn.cli.local.data_plane import DataPlane, Registration

HANDLERS = Path(__file__).resolve().parent / "handlers"


@pytest.fixture(scope="session")
def handlers_dir() -> Path:
    return HANDLERS


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    dp = DataPlane(tmp_path_factory.mktemp("state"), persist=False)
    dp.start()
    yield dp
    dp.stop()


@pytest.fixture(scope="module")
def client(plane: DataPlane) -> Iterator[httpx.Client]:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(plane.ca_path)), timeout=30) as c:
        yield c


@pytest.fixture
def tiny(plane: DataPlane, request: pytest.FixtureRequest) -> Iterator[Callable[..., Registration]]:
    """Register a function running one of the tiny handlers (auth NONE unless given); unregistered after the test."""
    keys: list[str] = []

    def register(handler: str, **settings: Any) -> Registration:
        name = f"{request.node.name.replace('_', '-')[:40]}-{len(keys)}"
        settings.setdefault("auth_type", "NONE")
        settings.setdefault("memory_mb", 256)
        settings.setdefault("timeout_s", 5)
        ep = plane.register_lambda(name, HANDLERS, handler=handler, task_root=str(HANDLERS), **settings)
        keys.append(ep.key)
        return ep

    yield register
    for key in keys:
        plane.unregister(key)


@pytest.fixture
def stats(plane: DataPlane) -> Callable[[str], dict[str, Any]]:
    """The pool counters of a registered function (sandboxes, busy, idle, cold_starts, throttles, ...)."""

    def get(key: str) -> dict[str, Any]:
        for target in plane.status()["targets"]:
            if target["key"] == key:
                return dict(target["pool"])
        raise KeyError(key)

    return get


@pytest.fixture
def wait_for() -> Callable[..., bool]:
    """Poll a predicate until true or `timeout` seconds pass (bounded waits, no timing assertions)."""

    def wait(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    return wait


@pytest.fixture
def start_data_plane() -> Callable[[Path], subprocess.Popen[bytes]]:
    """Start `python -m mlfn.cli.local.data_plane` on a state directory and wait for its admin API."""

    def start(state: Path) -> subprocess.Popen[bytes]:
        (state / "data-plane" / "admin.json").unlink(missing_ok=True)
        process = subprocess.Popen([sys.executable, "-m", "mlfn.cli.local.data_plane", "--state-dir", str(state)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (state / "data-plane" / "admin.json").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("the data plane process did not start")
            time.sleep(0.05)
        return process

    return start
