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
