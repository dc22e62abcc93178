"""The data plane as a process: admin API with a token, registrations that survive a restart (same URL)."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import httpx

from mlfn.cli.local.data_plane import DataPlaneClient


def _stop(process: subprocess.Popen[bytes], client: DataPlaneClient) -> None:
    client.shutdown()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_register_over_the_admin_api_and_survive_a_restart(tmp_path, handlers_dir, start_data_plane):
    process = start_data_plane(tmp_path)
    try:
        admin = DataPlaneClient(tmp_path)
        ep = admin.register_lambda("proc-echo", handlers_dir, handler="tiny.plain", task_root=str(handlers_dir),
                                   auth_type="NONE", memory_mb=256)
        verify = ssl.create_default_context(cafile=ep["ca_path"])
        assert httpx.get(ep["url"], verify=verify).json() == {"answer": 42}
        assert (tmp_path / "data-plane" / "admin.json").stat().st_mode & 0o077 == 0
        forged = httpx.get(admin._client.base_url.join("/status"), headers={"authorization": "Bearer nope"})
        assert forged.status_code == 401
        _stop(process, admin)

        process = start_data_plane(tmp_path)
        admin = DataPlaneClient(tmp_path)
        status = admin.status()
        assert [t["url"] for t in status["targets"]] == [ep["url"]]
        assert httpx.get(ep["url"], verify=verify).json() == {"answer": 42}
        assert admin.unregister("lambda:proc-echo:live") is True
        assert admin.status()["targets"] == []
        iris = admin.register_model(handlers_dir.parents[2] / "functions" / "iris", auth_type="NONE")
        assert iris["key"] == "lambda:mlfn-iris-dev:live"
        body = (handlers_dir.parents[2] / "functions" / "iris" / "example.json").read_bytes()
        assert httpx.post(iris["url"] + "v1/models/iris:predict", content=body, verify=verify,
                          headers={"content-type": "application/json"}, timeout=60).status_code == 200
        _stop(process, admin)
    finally:
        if process.poll() is None:
            process.kill()


def test_a_killed_data_plane_leaves_no_container_running_after_restart(tmp_path, handlers_dir, start_data_plane):
    process = start_data_plane(tmp_path)
    try:
        admin = DataPlaneClient(tmp_path)
        ep = admin.register_container("orphan", handlers_dir, kind="ecs", auth_type="NONE",
                                      command=[sys.executable, str(handlers_dir / "tiny_server.py")])
        assert httpx.get(ep["url"] + "ping", verify=ssl.create_default_context(cafile=ep["ca_path"])).status_code == 200
        children = json.loads((tmp_path / "data-plane" / "children.json").read_text())
        (pid,) = (int(p) for p in children)
        process.kill()  # no chance to clean up
        process.wait(10)
        assert Path(f"/proc/{pid}").exists()
        process = start_data_plane(tmp_path)
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        _stop(process, DataPlaneClient(tmp_path))
    finally:
        if process.poll() is None:
            process.kill()
