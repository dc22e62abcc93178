"""Sandbox logs reach the emulator's CloudWatch Logs (a real moto server over HTTP)."""

from __future__ import annotations

import ssl

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from mlfn.cli.local.cloudwatch_logs import CloudWatchLogsForwarder
from mlfn.cli.local.data_plane import DataPlane


@pytest.fixture
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_invocation_logs_land_in_cloudwatch(tmp_path, handlers_dir, moto_url):
    forward = CloudWatchLogsForwarder(moto_url, flush_s=0.1)
    plane = DataPlane(tmp_path, persist=False, log_forward=forward)
    plane.start()
    try:
        ep = plane.register_lambda("logged", handlers_dir, handler="tiny.fail", task_root=str(handlers_dir),
                                   auth_type="NONE", memory_mb=256)
        with httpx.Client(verify=ssl.create_default_context(cafile=str(plane.ca_path))) as client:
            assert client.get(ep.url).status_code == 502
    finally:
        plane.stop()
        forward.close()
    logs = boto3.client("logs", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")
    messages = [e["message"] for e in logs.filter_log_events(logGroupName="/aws/lambda/logged")["events"]]
    assert any(m.startswith("START RequestId:") for m in messages)
    assert any("this handler always fails" in m for m in messages)
    assert forward.errors == 0
