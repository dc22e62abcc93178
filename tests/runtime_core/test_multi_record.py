"""Multi-record `/invocations` bodies (what Batch Transform sends with SplitType Line, BatchStrategy MultiRecord):
JSON Lines or CSV rows in, one JSON line per record out, in order, each bad record its own error."""

from __future__ import annotations

import orjson
import pytest

from mlfn.runtime.errors import RequestError
from mlfn.runtime.multi_record import FAILED_HEADER

JSONL = {"content-type": "application/jsonlines"}
CSV_TO_JSONL = {"content-type": "text/csv", "accept": "application/jsonlines"}


def lines_of(reply) -> list:
    assert reply.status == 200
    assert reply.content_type == "application/jsonlines"
    assert reply.body.endswith(b"\n")
    return [orjson.loads(line) for line in reply.body.splitlines()]


def test_json_lines_answer_one_line_per_record_in_order(services, direct, iris_features):
    rows = iris_features[[0, 60, 120, 1]]
    body = b"\n".join(orjson.dumps(row.tolist()) for row in rows) + b"\n"
    reply = services["iris"].invocations(body, JSONL)
    got = lines_of(reply)
    want = direct("iris", {"X": rows})["output_label"].tolist()
    assert [line["output_label"] for line in got] == want
    assert FAILED_HEADER not in reply.headers


def test_a_bad_record_is_its_own_error_and_its_neighbours_are_scored(services, direct, iris_features):
    rows = iris_features[[0, 60, 120]]
    body = (orjson.dumps(rows[0].tolist()) + b"\n[1, 2, 3]\n{not json\n\n" + orjson.dumps(rows[1].tolist())
            + b"\r\n" + orjson.dumps(rows[2].tolist()))  # no final newline: the last line is still a record
    reply = services["iris"].invocations(body, JSONL)
    got = lines_of(reply)
    assert len(got) == 6
    want = direct("iris", {"X": rows})["output_label"].tolist()
    assert [got[i]["output_label"] for i in (0, 4, 5)] == want
    assert reply.headers[FAILED_HEADER] == "1,2,3"
    assert got[1]["record"] == 1 and got[1]["status"] == 400 and "dimension" in got[1]["error"]
    assert got[2]["record"] == 2 and "not JSON" in got[2]["error"]
    assert got[3]["record"] == 3 and "empty line" in got[3]["error"]


def test_a_record_the_model_fails_on_is_a_500_line_alone(services):
    good, bad = b"[1, 2, 3]", b"[1, 2]"  # `fails` reshapes to 3 columns: 2 values fail at run time
    reply = services["fails"].invocations(b"\n".join([good, bad, good]) + b"\n", JSONL)
    got = lines_of(reply)
    assert got[0] == got[2] == [1.0, 2.0, 3.0]
    assert got[1]["record"] == 1 and got[1]["status"] in (400, 500)


def test_csv_rows_with_jsonlines_accept(services, direct, iris_features):
    rows = iris_features[[0, 60]]
    csv_rows = [",".join(repr(float(v)) for v in row).encode() for row in rows]
    reply = services["iris"].invocations(csv_rows[0] + b"\nsepal,petal\n" + csv_rows[1] + b"\n", CSV_TO_JSONL)
    got = lines_of(reply)
    want = direct("iris", {"X": rows})["output_label"].tolist()
    assert [got[0]["output_label"], got[2]["output_label"]] == want
    assert "not a CSV row of numbers" in got[1]["error"] and reply.headers[FAILED_HEADER] == "1"


def test_records_beyond_max_rows_run_in_several_runs(services, iris_features):
    service = services["iris"]
    rows = [iris_features[i % 150].tolist() for i in range(service.max_rows * 2 + 3)]
    got = lines_of(service.invocations(b"\n".join(map(orjson.dumps, rows)), JSONL))
    assert len(got) == len(rows)


def test_an_empty_body_is_refused(services):
    with pytest.raises(RequestError, match="no records"):
        services["iris"].invocations(b"", JSONL)


def test_plain_csv_keeps_its_meaning(services):
    reply = services["iris"].invocations(b"5.1,3.5,1.4,0.2\n", {"content-type": "text/csv"})
    assert reply.content_type == "application/json" and "predictions" in orjson.loads(reply.body)
