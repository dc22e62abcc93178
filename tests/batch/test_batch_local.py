"""`mlfn batch --local` over the emulator's S3 (boto3 against its moto server): every bundled model's output
lines checked against onnxruntime, a bad line reported with its object and line and its neighbours scored, CSV and
one-object-per-file inputs, and a job interrupted then resumed doing only what was missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from mlfn.cli.batch.job import Job, JobSettings, JobStopped
from mlfn.cli.batch.locations import parse_s3
from mlfn.cli.main import main

from .conftest import BUCKET, put_lines, read_lines

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def records_for(name: str, count: int) -> list[Any]:
    rng = np.random.default_rng(7)
    if name == "iris":
        return rng.uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], size=(count, 4)).round(2).tolist()
    if name == "digits":
        return rng.integers(0, 17, size=(count, 64)).astype(float).tolist()
    words = ["open a socket", "round the number", "wait for the thread", "parse the date", "read the file"]
    return [f"{words[i % len(words)]} number {i}" for i in range(count)]


def onnx_outputs(name: str, records: list[Any]) -> dict[str, Any]:
    session = ort.InferenceSession(str(FUNCTIONS / name / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    value = np.asarray(records, dtype=object if feed.type == "tensor(string)" else np.float32)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {feed.name: value}), strict=True))


@pytest.mark.parametrize("name", ["iris", "digits", "topics"])
def test_each_bundled_model_scores_every_line_as_onnxruntime_does(name, s3, capsys) -> None:
    records = records_for(name, 150)
    put_lines(s3, f"in-{name}/part-1.jsonl", records[:100])
    put_lines(s3, f"in-{name}/sub/part-2.jsonl", records[100:])
    code = main(["batch", str(FUNCTIONS / name), "--input", f"s3://{BUCKET}/in-{name}/",
                 "--output", f"s3://{BUCKET}/out-{name}/", "--local", "--json", "--quiet", "--records-per-call", "32"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert summary["TransformJobStatus"] == "Completed"
    assert (summary["Records"], summary["FailedRecords"]) == (150, 0)
    got = read_lines(s3, f"out-{name}/part-1.jsonl.out") + read_lines(s3, f"out-{name}/sub/part-2.jsonl.out")
    assert len(got) == 150
    want = onnx_outputs(name, records)
    label = "label" if "label" in want else "output_label"
    labels = [line[label] if isinstance(line, dict) and label in line else line.get("digit") for line in got]
    assert labels == [v.item() if hasattr(v, "item") else v for v in want[label]]
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=BUCKET, Key=f"out-{name}/part-1.jsonl.err")


def test_a_bad_line_is_reported_with_object_and_line_and_its_neighbours_scored(s3, capsys) -> None:
    rows = records_for("iris", 5)
    body = b"\n".join(json.dumps(r).encode() for r in rows[:2]) + b"\n[1, 2]\n\n{oops\n" + json.dumps(
        rows[2]).encode() + b"\n"
    s3.put_object(Bucket=BUCKET, Key="in-bad/data.jsonl", Body=body)
    code = main(["batch", str(FUNCTIONS / "iris"), "--input", f"s3://{BUCKET}/in-bad/data.jsonl",
                 "--output", f"s3://{BUCKET}/out-bad", "--local", "--json", "--quiet"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and (summary["Records"], summary["FailedRecords"]) == (5, 2)
    out = read_lines(s3, "out-bad/data.jsonl.out")
    errors = read_lines(s3, "out-bad/data.jsonl.err")
    want = onnx_outputs("iris", [rows[0], rows[1], rows[2]])["output_label"].tolist()
    assert [out[0]["output_label"], out[1]["output_label"], out[4]["output_label"]] == want
    assert [(e["object"], e["line"]) for e in errors] == [(f"s3://{BUCKET}/in-bad/data.jsonl", 3),
                                                        (f"s3://{BUCKET}/in-bad/data.jsonl", 5)]
    assert "dimension" in errors[0]["error"] and "not JSON" in errors[1]["error"]


def test_csv_and_one_object_per_file_inputs(s3, capsys) -> None:
    rows = records_for("iris", 3)
    s3.put_object(Bucket=BUCKET, Key="in-csv/rows.csv", Body="\n".join(",".join(map(str, r)) for r in rows).encode())
    assert main(["batch", str(FUNCTIONS / "iris"), "--input", f"s3://{BUCKET}/in-csv/", "--output",
                 f"s3://{BUCKET}/out-csv/", "--local", "--quiet"]) == 0
    got = [line["output_label"] for line in read_lines(s3, "out-csv/rows.csv.out")]
    assert got == onnx_outputs("iris", rows)["output_label"].tolist()
    for png in sorted((FUNCTIONS / "digits" / "examples").glob("*.png")):
        s3.put_object(Bucket=BUCKET, Key=f"in-png/{png.name}", Body=png.read_bytes())
    assert main(["batch", str(FUNCTIONS / "digits"), "--input", f"s3://{BUCKET}/in-png/", "--output",
                 f"s3://{BUCKET}/out-png/", "--local", "--quiet"]) == 0
    for digit in (0, 3, 7):
        (line,) = read_lines(s3, f"out-png/{digit}.png.out")
        assert line["predictions"][0]["digit"] == digit
    capsys.readouterr()


def test_an_interrupted_job_resumes_with_only_what_is_missing(s3, mlfn_home) -> None:
    from mlfn.cli.batch.invokers import in_process

    rows = records_for("iris", 100)
    put_lines(s3, "in-resume/a.jsonl", rows[:60])
    put_lines(s3, "in-resume/b.jsonl", rows[60:])
    source, target = parse_s3(f"s3://{BUCKET}/in-resume/", "--input"), parse_s3(f"s3://{BUCKET}/out-resume/", "-")
    model = in_process(FUNCTIONS / "iris")
    sent: list[int] = []

    def stop_after_three(body: bytes, headers: dict[str, str]) -> Any:
        if len(sent) == 3:
            raise KeyboardInterrupt
        sent.append(body.count(b"\n"))
        return model(body, headers)

    settings = JobSettings(records_per_call=25)
    job = Job(s3, source, target, stop_after_three, settings, model="iris", work_dir=mlfn_home / "batch")
    with pytest.raises(JobStopped):
        job.run()
    assert json.loads((job.folder / "job.json").read_text())["TransformJobStatus"] == "Stopped"
    assert sent == [25, 25, 10]  # a.jsonl done (60), b.jsonl not started
    sent.clear()

    def counting(body: bytes, headers: dict[str, str]) -> Any:
        sent.append(body.count(b"\n"))
        return model(body, headers)

    summary = Job(s3, source, target, counting, settings, model="iris", work_dir=mlfn_home / "batch",
                  resume=True).run()
    assert summary["TransformJobStatus"] == "Completed"
    assert sent == [25, 15] and summary["SkippedObjects"] == 1
    got = read_lines(s3, "out-resume/a.jsonl.out") + read_lines(s3, "out-resume/b.jsonl.out")
    assert [line["output_label"] for line in got] == onnx_outputs("iris", rows)["output_label"].tolist()


def test_a_job_interrupted_inside_an_object_goes_on_from_its_checkpoint(s3, mlfn_home) -> None:
    from mlfn.cli.batch.invokers import in_process

    rows = records_for("iris", 70)
    put_lines(s3, "in-mid/a.jsonl", rows)
    source, target = parse_s3(f"s3://{BUCKET}/in-mid/", "-"), parse_s3(f"s3://{BUCKET}/out-mid/", "-")
    model = in_process(FUNCTIONS / "iris")
    sent: list[int] = []

    def send(limit: int | None) -> Any:
        def call(body: bytes, headers: dict[str, str]) -> Any:
            if limit is not None and len(sent) == limit:
                raise KeyboardInterrupt
            sent.append(body.count(b"\n"))
            return model(body, headers)
        return call

    settings = JobSettings(records_per_call=20)
    with pytest.raises(JobStopped):
        Job(s3, source, target, send(2), settings, model="iris", work_dir=mlfn_home / "batch").run()
    sent.clear()
    Job(s3, source, target, send(None), settings, model="iris", work_dir=mlfn_home / "batch", resume=True).run()
    assert sent == [20, 10]  # records 41..70 only
    got = read_lines(s3, "out-mid/a.jsonl.out")
    assert [line["output_label"] for line in got] == onnx_outputs("iris", rows)["output_label"].tolist()


def test_bad_locations_are_refused_with_what_was_expected(capsys) -> None:
    assert main(["batch", str(FUNCTIONS / "iris"), "--input", "bucket/x", "--output", "s3://b/o", "--local"]) == 2
    assert "expected an S3 location s3://BUCKET/PREFIX" in capsys.readouterr().err


def test_batch_settings_of_the_folder_fail_a_job_with_too_many_bad_records(s3, tmp_path, capsys) -> None:
    import shutil

    folder = tmp_path / "iris"
    shutil.copytree(FUNCTIONS / "iris", folder)
    with open(folder / "mlfn.toml", "a", encoding="utf-8") as f:
        f.write("\n[batch]\nrecords_per_call = 4\nmax_failed_percent = 10\n")
    rows: list[Any] = records_for("iris", 8)
    rows[3] = [1, 2]
    rows[6] = "nonsense"
    put_lines(s3, "in-strict/data.jsonl", rows)
    code = main(["batch", str(folder), "--input", f"s3://{BUCKET}/in-strict/", "--output",
                 f"s3://{BUCKET}/out-strict/", "--local", "--json", "--quiet"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and summary["TransformJobStatus"] == "Failed"
    assert "2 of 8 records failed" in summary["FailureReason"] and "max_failed_percent allows 10%" in summary[
        "FailureReason"]
    assert [e["line"] for e in read_lines(s3, "out-strict/data.jsonl.err")] == [4, 7]
