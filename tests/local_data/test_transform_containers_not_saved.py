"""A Batch Transform job's container lives as long as its job: the data plane never saves it for its next start
(a job cut short by a restart is Failed, and nothing would release the container), while an endpoint is saved."""

from __future__ import annotations

import json
from pathlib import Path

from mlfn.cli.local.config import TRANSFORM_PREFIX
from mlfn.cli.local.data_plane import DataPlane

IRIS = Path(__file__).resolve().parents[2] / "functions" / "iris"


def test_registrations_json_keeps_endpoints_but_not_transform_job_containers(tmp_path: Path) -> None:
    plane = DataPlane(tmp_path, persist=True)
    plane.start()
    try:
        plane.register_container("ep1", IRIS, kind="sagemaker", idle_s=5)
        plane.register_container(TRANSFORM_PREFIX + "job1", IRIS, kind="sagemaker", idle_s=5)
        assert {r.key for r in plane.endpoints()} >= {"sagemaker:ep1", f"sagemaker:{TRANSFORM_PREFIX}job1"}
        saved = json.loads((tmp_path / "data-plane" / "registrations.json").read_text())
        assert [entry["name"] for entry in saved] == ["ep1"]
    finally:
        plane.stop()
