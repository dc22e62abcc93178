"""JSON Lines over HTTP on the real server (`mlfn serve`'s core, quick path and pool path alike)."""

from __future__ import annotations

import orjson


def test_json_lines_over_http_one_answer_line_per_record(iris) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [1, 2, 3], [6.7, 3.0, 5.2, 2.3]]
    body = b"\n".join(orjson.dumps(r) for r in rows) + b"\n"
    for _ in range(3):  # first calls go to the pool, later ones may run inline: both answer the same
        reply = iris.post("/invocations", content=body, headers={"content-type": "application/jsonlines"})
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/jsonlines")
        assert reply.headers["x-mlfn-failed-records"] == "1"
        lines = [orjson.loads(line) for line in reply.content.splitlines()]
        assert [lines[0]["output_label"], lines[2]["output_label"]] == ["setosa", "virginica"]
        assert lines[1]["record"] == 1 and lines[1]["status"] == 400


def test_a_distributed_map_batch_event_gets_one_result_per_item(capsys) -> None:
    """What a Distributed Map's ItemBatcher passes a Lambda function: {"Items": [...], "BatchInput": ...}."""
    from pathlib import Path
    from types import SimpleNamespace

    from mlfn.runtime.lambda_adapter import build

    handler = build(Path(__file__).resolve().parents[2] / "functions" / "iris")
    event = {"Items": [[5.1, 3.5, 1.4, 0.2], [1, 2], [6.7, 3.0, 5.2, 2.3]], "BatchInput": {"job": "j-1"}}
    results = handler(event, SimpleNamespace(aws_request_id="r-1", function_version="1"))
    assert isinstance(results, list) and len(results) == 3
    assert [results[0]["output_label"], results[2]["output_label"]] == ["setosa", "virginica"]
    assert results[1]["record"] == 1 and results[1]["status"] == 400
    assert handler({"instances": [[5.1, 3.5, 1.4, 0.2]]}, SimpleNamespace(aws_request_id="r-2"))["predictions"]
    capsys.readouterr()
