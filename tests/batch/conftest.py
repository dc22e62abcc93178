"""A control plane process of the emulator (its S3 is moto's) under a temporary MLFN_HOME, started once, stopped
at the end; `mlfn batch --local` finds it there. Helpers to put JSON Lines in and read results back with boto3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest

from mlfn.cli.local.control_plane import client_environment, start_process, stop_process

BUCKET = "batch-data"


@pytest.fixture(scope="session")
def mlfn_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("mlfn-home")
    old = os.environ.get("MLFN_HOME")
    os.environ["MLFN_HOME"] = str(home)
    url = start_process(home / "local", timeout_s=120)
    saved = {name: os.environ.get(name) for name in client_environment(url)}
    os.environ.update(client_environment(url))
    try:
        yield home
    finally:
        stop_process(home / "local")
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if old is None:
            os.environ.pop("MLFN_HOME", None)
        else:
            os.environ["MLFN_HOME"] = old


@pytest.fixture(scope="session")
def s3(mlfn_home: Path) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def put_lines(s3: Any, key: str, records: list[Any]) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"".join(orjson.dumps(r) + b"\n" for r in records))


def read_lines(s3: Any, key: str) -> list[Any]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return [orjson.loads(line) for line in body.splitlines()]
