"""`mlfn local start|status|stop`: one emulator per state folder, idempotent start, clean stop (no process left)."""

from __future__ import annotations

import os
from typing import Any


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours still answers kill 0
        return os.waitpid(pid, os.WNOHANG)[0] != pid
    except ChildProcessError:
        return True


def test_start_is_idempotent_and_stop_leaves_nothing(fresh_cli: Any) -> None:
    first = fresh_cli("local", "start", "--json").json()
    assert first["started"] is True
    assert first["control_plane"].startswith("http://127.0.0.1:") and first["gateway"].startswith("https://127.0.0.1:")
    assert first["state_dir"] == str((fresh_cli.home / "local").resolve())
    again = fresh_cli("local", "start", "--json").json()
    assert again["started"] is False and again["pids"] == first["pids"]
    status = fresh_cli("local", "status", "--json").json()
    assert status["running"] is True and status["deployed"] == [] and status["pids"] == first["pids"]
    assert "control plane http://127.0.0.1:" in fresh_cli("local", "status").stdout

    assert fresh_cli("local", "stop", "--json").json() == {"stopped": True}
    assert not any(alive(pid) for pid in first["pids"].values())
    assert not (fresh_cli.home / "local" / "control-plane.json").exists()
    assert not (fresh_cli.home / "local" / "data-plane" / "admin.json").exists()
    assert fresh_cli("local", "status", check=False).code == 3
