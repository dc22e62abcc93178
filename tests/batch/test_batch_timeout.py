"""`[batch] timeout_s`, the batch state machine's TimeoutSeconds: an execution of a Distributed Map in the emulator
that runs longer ends TIMED_OUT (error States.Timeout, stopDate) with its Map Run ABORTED, and `mlfn batch` reports
it; `mlfn batch --local` over a long input stops its job there (exit 1, the transform job Stopped) and, with the
limit raised, `--resume` scores only what was missing."""

from __future__ import annotations

import argparse
import json
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from mlfn.cli.batch import state_machine
from mlfn.cli.batch.job import job_key
from mlfn.cli.batch.locations import parse_s3
from mlfn.cli.local import distributed_map as dm
from mlfn.cli.main import main

from .conftest import BUCKET, put_lines, read_lines
from .test_batch_restart import emulator, held_map, wait_for
from .test_distributed_map import DEFINITION

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]] * 20


def test_an_execution_past_timeout_seconds_is_timed_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    monkeypatch.setattr(dm, "_map", held_map(gate, 5, hold_all=True))  # held past TimeoutSeconds
    with emulator(tmp_path, {**DEFINITION, "TimeoutSeconds": 1}) as (sfn, _, arn):
        execution = sfn.start_execution(stateMachineArn=arn, input='{"key": "a.jsonl", "out": "o"}')["executionArn"]
        lines: list[str] = []
        summary = state_machine.follow(sfn, execution, lines.append, poll_s=0.1)
        assert summary["status"] == "TIMED_OUT" and summary["error"] == "States.Timeout"
        assert "TimeoutSeconds (1)" in summary["cause"] and any("TIMED_OUT" in line for line in lines)
        assert "stopDate" in sfn.describe_execution(executionArn=execution)
        gate.set()  # the map's children end; the Map Run ends ABORTED
        run = wait_for(lambda: (found := state_machine.map_run(sfn, execution)) and found["status"] != "RUNNING"
                       and found)
        assert run is not None and run["status"] == "ABORTED" and run["itemCounts"]["running"] == 0
        assert sfn.describe_execution(executionArn=execution)["status"] == "TIMED_OUT"
    gate.set()


def test_mlfn_batch_reports_a_timed_out_execution_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: Any) -> None:
    from mlfn.cli.commands.batch import _run_state_machine

    gate = threading.Event()
    monkeypatch.setattr(dm, "_map", held_map(gate, 5, hold_all=True))
    monkeypatch.setattr(state_machine, "POLL_S", 0.1)
    definition = json.loads(json.dumps({**DEFINITION, "TimeoutSeconds": 1}).replace('"Bucket": "b"',
                                                                                      '"Bucket": "timed-batch"'))
    with emulator(tmp_path, definition) as (sfn, _, arn):
        url = sfn.meta.endpoint_url
        session = SimpleNamespace(client=lambda name: boto3.client(
            name, endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"))
        s3 = session.client("s3")
        s3.create_bucket(Bucket="timed-batch")  # the definition's ItemReader and ResultWriter bucket
        s3.put_object(Bucket="timed-batch", Key="in/a.jsonl", Body=b"1\n2\n")
        args = argparse.Namespace(resume=False, records_per_call=None, concurrency=None, quiet=True, no_wait=False,
                                  json=False)
        code = _run_state_machine(args, session, arn, parse_s3("s3://timed-batch/in/", "--input"),
                                  parse_s3("s3://timed-batch/out/", "--output"))
        gate.set()
    assert code == 1
    out, err = capsys.readouterr()
    assert out.startswith("TIMED_OUT: ") and "(States.Timeout: The execution ran longer than" in out
    assert "TimeoutSeconds ([batch] timeout_s); raise it" in err and "Traceback" not in err


def test_mlfn_batch_local_stops_at_timeout_and_resume_does_the_rest(s3: Any, tmp_path: Path, capsys: Any) -> None:
    model = tmp_path / "slow"
    shutil.copytree(FUNCTIONS / "iris", model)
    toml = (model / "mlfn.toml").read_text()  # one record a call: 60,000 calls take longer than a second
    (model / "mlfn.toml").write_text(toml + "\n[batch]\nrecords_per_call = 1\nconcurrency = 1\ntimeout_s = 1\n")
    put_lines(s3, "timeout-in/rows.jsonl", ROWS * 1000)
    command = ["batch", str(model), "--input", f"s3://{BUCKET}/timeout-in/", "--output", f"s3://{BUCKET}/timeout-out/",
               "--local", "--quiet"]
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "timed out after [batch] timeout_s = 1 s" in err and "--resume" in err
    sagemaker = boto3.client("sagemaker")
    key = job_key(parse_s3(command[3], "-"), parse_s3(command[5], "-"), "iris")
    (job,) = sagemaker.list_transform_jobs(NameContains=f"mlfn-batch-{key}")["TransformJobSummaries"]
    assert job["TransformJobStatus"] == "Stopped"

    (model / "mlfn.toml").write_text((model / "mlfn.toml").read_text().replace("timeout_s = 1\n", "timeout_s = 600\n"))
    assert main([*command, "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["TransformJobStatus"] == "Completed"
    assert 0 < summary["Records"] < len(ROWS) * 1000  # only what the stopped job had not scored
    assert len(read_lines(s3, "timeout-out/rows.jsonl.out")) == len(ROWS) * 1000
