"""`mlfn batch` on a deployed Lambda model with `[batch] state_machine = true`: one execution of the stack's
Distributed Map, run by the emulator (cli/local/distributed_map.py) over a JSON Lines object in its S3, checked with
boto3: every output line against onnxruntime, the execution SUCCEEDED, the Map Run's item and child counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from .deployed import deployed_iris

BUCKET = "sm-batch-data"
RECORDS = 130
PER_CALL = 16


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path, Any]]:
    with deployed_iris(tmp_path_factory.mktemp("sm-batch"), "smiris",
                       f"\n[batch]\nstate_machine = true\nbucket = \"{BUCKET}\"\n"
                       f"records_per_call = {PER_CALL}\nconcurrency = 3\n") as found:
        yield found


def test_mlfn_batch_runs_one_distributed_map_execution(deployed: tuple[Any, Path, Any]) -> None:
    cli, model, client = deployed
    s3, sfn = client("s3"), client("stepfunctions")
    s3.create_bucket(Bucket=BUCKET)
    rows = np.random.default_rng(3).uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], size=(RECORDS, 4)).round(2).tolist()
    s3.put_object(Bucket=BUCKET, Key="rows/part-1.jsonl", Body="".join(json.dumps(r) + "\n" for r in rows).encode())

    run = cli("batch", str(model), "--input", f"s3://{BUCKET}/rows/part-1.jsonl", "--output",
              f"s3://{BUCKET}/scores/", "--local", "--json", timeout=180)
    summary = run.json()
    assert summary["status"] == "SUCCEEDED", summary
    assert "started arn:aws:states:" in run.stderr and "SUCCEEDED" in run.stderr

    execution = sfn.describe_execution(executionArn=summary["executionArn"])
    assert execution["status"] == "SUCCEEDED" and "stopDate" in execution
    runs = sfn.list_map_runs(executionArn=summary["executionArn"])["mapRuns"]
    assert len(runs) == 1
    described = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])
    batches = -(-RECORDS // PER_CALL)
    assert described["status"] == "SUCCEEDED" and described["maxConcurrency"] == 3
    items, children = described["itemCounts"], described["executionCounts"]
    assert (items["total"], items["succeeded"], items["failed"], items["running"]) == (RECORDS, RECORDS, 0, 0)
    assert (children["total"], children["succeeded"]) == (batches, batches)
    assert summary["itemCounts"] == items

    manifest_key = json.loads(execution["output"])["ResultWriterDetails"]["Key"]
    assert manifest_key.startswith("scores/")
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    assert manifest["MapRunArn"] == runs[0]["mapRunArn"] and manifest["ResultFiles"]["FAILED"] == []
    (result_file,) = manifest["ResultFiles"]["SUCCEEDED"]
    lines = s3.get_object(Bucket=BUCKET, Key=result_file["Key"])["Body"].read().decode().splitlines()
    assert len(lines) == RECORDS
    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(["output_label"], {session.get_inputs()[0].name: np.asarray(rows, dtype=np.float32)})[0]
    assert [json.loads(line)["output_label"] for line in lines] == want.tolist()


def test_no_wait_returns_the_execution_arn_and_a_bad_input_is_refused(deployed: tuple[Any, Path, Any]) -> None:
    cli, model, client = deployed
    s3, sfn = client("s3"), client("stepfunctions")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="few/a.jsonl", Body=b"[5.1, 3.5, 1.4, 0.2]\n")
    run = cli("batch", str(model), "--input", f"s3://{BUCKET}/few/a.jsonl", "--output", f"s3://{BUCKET}/few-out/",
              "--local", "--no-wait", "--quiet")
    arn = run.stdout.strip()
    assert arn.startswith("arn:aws:states:") and ":execution:" in arn
    assert sfn.describe_execution(executionArn=arn)["status"] in ("RUNNING", "SUCCEEDED")
    wrong = cli("batch", str(model), "--input", "s3://elsewhere/rows.jsonl", "--output", f"s3://{BUCKET}/x/",
                "--local", check=False)
    assert wrong.code != 0 and f"reads and writes bucket '{BUCKET}'" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    override = cli("batch", str(model), "--input", f"s3://{BUCKET}/few/a.jsonl", "--output", f"s3://{BUCKET}/x/",
                   "--local", "--records-per-call", "8", check=False)
    assert override.code != 0 and "--records-per-call: the model's batch state machine" in override.stderr
