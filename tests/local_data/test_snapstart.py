"""SnapStart in the emulator: init once at publish, sandboxes restored from it (Runtime API restore lifecycle)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from mlfn.cli.local.config import FunctionConfig
from mlfn.cli.local.logsink import FileLogSink
from mlfn.cli.local.pool import FunctionPool
from mlfn.cli.local.snapstart import SNAPSTART_LABEL, SnapStartPublishError


def _config(handlers_dir: Path, tmp_path: Path, handler: str = "snap.handler", **extra: Any) -> FunctionConfig:
    env = {"SNAP_INITS_FILE": str(tmp_path / "inits"), **extra.pop("env", {})}
    return FunctionConfig(name="snap", model_dir=str(handlers_dir), handler=handler, snapstart=True, env=env,
                          timeout_s=10, **extra)


def _report_lines(sink: FileLogSink) -> list[str]:
    return [str(e["message"]) for e in sink.read("/aws/lambda/snap")]


async def _invoke_two_at_once(pool: FunctionPool) -> list[Any]:
    return await asyncio.gather(pool.invoke(b'{"a": 1}'), pool.invoke(b'{"b": 2}'))


def test_restore_lifecycle_init_once_hooks_and_restore_duration(handlers_dir: Path, tmp_path: Path) -> None:
    sink = FileLogSink(tmp_path / "logs")

    async def scenario() -> list[Any]:
        pool = FunctionPool(_config(handlers_dir, tmp_path, env={"INIT_SLEEP_S": "0.5"}), sink)
        await pool.start()  # publishing: init + before-snapshot hooks, stopped at GET /restore/next
        assert (tmp_path / "inits").read_text().count("\n") == 1
        try:
            return await _invoke_two_at_once(pool)
        finally:
            await pool.close()

    results = asyncio.run(scenario())
    assert all(r.ok for r in results), [r.payload for r in results]
    bodies = [json.loads(r.payload) for r in results]
    assert (tmp_path / "inits").read_text().count("\n") == 1  # two sandboxes, one init
    assert {b["pid"] for b in bodies} != {bodies[0]["init_pid"]} and bodies[0]["pid"] != bodies[1]["pid"]
    assert all(b["events"] == ["before-snapshot", "after-restore"] for b in bodies)
    assert all(b["initialization_type"] == "snap-start" for b in bodies)
    assert all(r.cold_start and r.init_ms == 0 and 0 < r.restore_ms < 500 for r in results)
    logs = _report_lines(sink)
    assert any(m.startswith("INIT_REPORT Init Duration: ") and "Status: success" in m for m in logs)
    reports = [m for m in logs if m.startswith("REPORT ")]
    assert len(reports) == 2
    assert all("\tRestore Duration: " in m and "\tBilled Restore Duration: " in m and "Init Duration" not in m
               for m in reports)


def test_after_restore_hook_failure_fails_the_restore(handlers_dir: Path, tmp_path: Path) -> None:
    sink = FileLogSink(tmp_path / "logs")

    async def scenario() -> Any:
        pool = FunctionPool(_config(handlers_dir, tmp_path, env={"FAIL_AFTER_RESTORE": "1"}), sink)
        await pool.start()
        try:
            return await pool.invoke(b"{}")
        finally:
            await pool.close()

    result = asyncio.run(scenario())
    assert result.status == "init_error" and result.error_type == "Runtime.AfterRestoreError"


def _no_restore_config(handlers_dir: Path, tmp_path: Path, **extra: Any) -> FunctionConfig:
    return _config(handlers_dir, tmp_path, command=[sys.executable, str(handlers_dir / "no_restore_runtime.py")],
                   **extra)


def test_publishing_fails_for_an_image_with_neither_restore_calls_nor_label(handlers_dir: Path,
                                                                            tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = FunctionPool(_no_restore_config(handlers_dir, tmp_path), FileLogSink(tmp_path / "logs"))
        try:
            await pool.start()
        finally:
            await pool.close()

    with pytest.raises(SnapStartPublishError, match=r"restore/next .* no label com\.amazonaws\.lambda\.feature"):
        asyncio.run(scenario())


def test_the_label_alone_lets_the_version_publish(handlers_dir: Path, tmp_path: Path) -> None:
    async def scenario() -> Any:
        config = _no_restore_config(handlers_dir, tmp_path, labels={SNAPSTART_LABEL: "Allow"})
        pool = FunctionPool(config, FileLogSink(tmp_path / "logs"))
        await pool.start()
        try:
            return await pool.invoke(b"{}")
        finally:
            await pool.close()

    result = asyncio.run(scenario())
    assert result.ok and json.loads(result.payload)["initialization_type"] == "snap-start"


def test_snapstart_with_provisioned_concurrency_is_refused(handlers_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="provisioned concurrency"):
        _config(handlers_dir, tmp_path, provisioned=1)


def test_an_entry_point_that_cannot_fork_is_restored_in_place(handlers_dir: Path, tmp_path: Path) -> None:
    """A command other than `python -m awslambdaric <handler>` (e.g. a chroot): each sandbox initialises, and its
    /restore/next is answered at once, so the hooks still run."""
    sink = FileLogSink(tmp_path / "logs")
    command = ["env", sys.executable, "-m", "awslambdaric", "snap.handler"]

    async def scenario() -> Any:
        pool = FunctionPool(_config(handlers_dir, tmp_path, command=command), sink)
        await pool.start()
        try:
            return await pool.invoke(b"{}")
        finally:
            await pool.close()

    result = asyncio.run(scenario())
    assert result.ok, result.payload
    body = json.loads(result.payload)
    assert body["events"] == ["before-snapshot", "after-restore"] and body["initialization_type"] == "snap-start"
    assert (tmp_path / "inits").read_text().count("\n") == 2  # the snapshot's init, then the sandbox's own


def test_a_refused_publish_leaves_nothing_registered(plane: Any, handlers_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SnapStartPublishError):
        plane.register_lambda("snap-refused", handlers_dir, snapstart=True, auth_type="NONE",
                              command=[sys.executable, str(handlers_dir / "no_restore_runtime.py")])
    assert all(t["name"] != "snap-refused" for t in plane.status()["targets"])
