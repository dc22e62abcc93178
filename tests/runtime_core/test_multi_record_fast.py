"""The fast paths of multi-record bodies: rows of numbers parsed by simdjson straight into a float64 matrix
(`multi_record._float_matrix`, `codecs.simd_rows`), a JSON Lines body parsed in one call (`multi_record._bulk_json`)
and rows of numbers read in one pass (`tensors.float_rows`) answer byte for byte as the line-by-line path does, on
good input and on input mixed with bad lines; float32 values survive the trip exactly as onnxruntime sees them."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from mlfn.runtime import multi_record
from mlfn.runtime.codecs import simd_rows, tensors
from mlfn.runtime.multi_record import FAILED_HEADER

JSONL = {"content-type": "application/jsonlines"}


def answers(service, body: bytes, *, slow: bool, monkeypatch) -> tuple[bytes, dict[str, str]]:
    """The service's answer, by the fast path or (slow) with both fast paths turned off."""
    with monkeypatch.context() as patch:
        if slow:
            patch.setattr(multi_record, "_float_matrix", lambda body: None)
            patch.setattr(multi_record, "_bulk_json", lambda body: None)
            patch.setattr(tensors, "float_rows", lambda values: None)
        reply = service.invocations(body, JSONL)
    assert reply.status == 200
    return reply.body, dict(reply.headers)


def spy(monkeypatch) -> dict[str, int]:
    """Counts how often each fast path gave a result (simdjson's path taken however small the body)."""
    monkeypatch.setattr(multi_record, "SIMD_MIN_BYTES", 0)
    seen = {"simd": 0, "bulk": 0, "rows": 0}
    simd, bulk, rows = multi_record._float_matrix, multi_record._bulk_json, tensors.float_rows

    def counted_simd(body):
        out = simd(body)
        seen["simd"] += out is not None
        return out

    def counted_bulk(body):
        out = bulk(body)
        seen["bulk"] += out is not None
        return out

    def counted_rows(values):
        out = rows(values)
        seen["rows"] += out is not None
        return out

    monkeypatch.setattr(multi_record, "_float_matrix", counted_simd)
    monkeypatch.setattr(multi_record, "_bulk_json", counted_bulk)
    monkeypatch.setattr(tensors, "float_rows", counted_rows)
    return seen


GOOD_BODIES = {
    "orjson rows": lambda rows: b"".join(orjson.dumps(r) + b"\n" for r in rows),
    "spaces and CRLF, no final newline": lambda rows: b"\r\n".join(
        b"[ " + b" , ".join(repr(v).encode() for v in r) + b" ]" for r in rows),
    "integers among floats": lambda rows: b"".join(orjson.dumps([round(v) for v in r]) + b"\n" for r in rows),
}


@pytest.mark.parametrize("make", GOOD_BODIES.values(), ids=GOOD_BODIES.keys())
def test_good_rows_take_the_fast_path_and_answer_as_the_line_by_line_path(make, services, iris_features, monkeypatch):
    body = make(iris_features[::7].tolist())
    slow = answers(services["iris"], body, slow=True, monkeypatch=monkeypatch)
    seen = spy(monkeypatch)
    fast = services["iris"].invocations(body, JSONL)
    assert seen == {"simd": 1, "bulk": 0, "rows": 1}  # simdjson's path was taken, not silently skipped
    assert (fast.body, dict(fast.headers)) == slow


BAD_LINES = [b"[1, 2, 3]", b"{not json", b"", b"   ", b"1, 2", b'"text"', b"[true, 1, 2, 3]", b"null",
             b"[1, 2, 3, 4, 5]", b"[[1, 2, 3, 4]]", b'[1, 2, "3", 4]', b"[1e999, 1, 1, 1]"]


@pytest.mark.parametrize("bad", BAD_LINES)
def test_a_bad_line_in_the_middle_is_its_own_error_and_the_answers_match_the_line_by_line_path(
        bad, services, iris_features, direct, monkeypatch):
    rows = iris_features[[0, 60, 120, 1, 61, 121]]
    lines = [orjson.dumps(r.tolist()) for r in rows]
    body = b"\n".join([*lines[:3], bad, *lines[3:]]) + b"\n"
    fast = services["iris"].invocations(body, JSONL)
    assert (fast.body, dict(fast.headers)) == answers(services["iris"], body, slow=True, monkeypatch=monkeypatch)
    got = [orjson.loads(line) for line in fast.body.splitlines()]
    assert len(got) == 7 and fast.headers[FAILED_HEADER] == "3"
    assert got[3]["record"] == 3 and got[3]["status"] == 400
    want = direct("iris", {"X": rows})["output_label"].tolist()
    assert [got[i]["output_label"] for i in (0, 1, 2, 4, 5, 6)] == want  # the neighbours are scored


def test_float32_values_reach_the_model_exactly_as_onnxruntime_takes_them(services, direct, monkeypatch):
    rng = np.random.default_rng(7)
    rows = (rng.standard_normal((50, 3)) * 10.0 ** rng.integers(-8, 8, (50, 3))).astype(np.float32)
    body = b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for r in rows)  # float32 repr
    seen = spy(monkeypatch)
    reply = services["fails"].invocations(body, JSONL)  # `fails` reshapes its input to rows of 3: an identity
    assert seen == {"simd": 1, "bulk": 0, "rows": 1}
    got = np.array([orjson.loads(line) for line in reply.body.splitlines()], dtype=np.float32)
    assert np.array_equal(got, rows)
    assert np.array_equal(got, direct("fails", {"x": rows})["y"])


def test_float_rows_reads_only_equal_rows_of_numbers():
    assert tensors.float_rows([[1, 2.5], [3, -0.0]]).tolist() == [[1.0, 2.5], [3.0, -0.0]]
    for values in ([[1, 2], [3]], [[1, [2]], [3, 4]], [1, 2], [], [[1, {}]], "12"):
        assert tensors.float_rows(values) is None, values
    assert tensors.only_numbers(b"[1.5e-3, -2]\n[3, 4]\n")
    for body in (b'["a"]', b"[null]", b"[true]", b"[false]", b'{"x": 1}'):
        assert not tensors.only_numbers(body), body


@pytest.mark.parametrize("body", [b"[1]\n\n[2]\n", b"[1]\n1, 2\n", b"[1]\n[2", b"[1]\r\n[2]\r\n", b"\n"])
def test_bulk_parse_takes_exactly_one_value_per_line_or_gives_up(body):
    lines = multi_record.split_lines(body)
    try:
        per_line = [orjson.loads(line) for line in lines]
    except orjson.JSONDecodeError:
        per_line = None
    assert multi_record._bulk_json(body) == per_line


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8, np.bool_])
@pytest.mark.parametrize("shape", [(5,), (5, 3), (2, 1), (3, 0)])
def test_an_array_of_predictions_is_written_in_one_call_as_a_call_per_row_would(dtype, shape):
    rng = np.random.default_rng(3)
    values = (rng.standard_normal(shape) * 1e3).astype(dtype)
    if values.dtype.kind == "f" and values.size:
        values.flat[0] = np.nan  # written as null, in both ways
    assert multi_record.rows_json(values) == [tensors.dumps(row) for row in values]


def test_simdjson_is_installed_so_its_path_is_not_silently_skipped():
    assert simd_rows.available()  # a pinned runtime dependency (runtime_layer/requirements.txt)


@pytest.mark.parametrize("text", [
    b"[[1, 2], [3]]", b"[[1, [2]], [3, 4]]", b"[[1, 2], 3]", b"[[1, 2], [[3], 4]]", b"[[1, 2], [3, 4, 5]]",
    b"[[1, true], [3, 4]]", b"[[1, null], [3, 4]]", b'[[1, "2"], [3, 4]]', b"[[1, {}], [3, 4]]", b"[[], []]",
    b"[[1e999, 1], [3, 4]]", b"[[123456789012345678901234567890, 1], [3, 4]]", b"[[1, 2], [3, 4]", b"[[1, 2]] x",
    b"[[1, 2], [3, 4], [5, 6]]",  # three rows where two were counted
])
def test_simdjson_takes_only_equal_rows_of_numbers(text):
    assert simd_rows.float_matrix(text, 2) is None


@pytest.mark.parametrize("text", [b"[[1, 2.5], [-0.0, 3e-2]]", b"[[18446744073709551615, -9223372036854775808],"
                                  b"[9007199254740993, 1E+2]]", b"[ [1 ,\r2] ,\t[3,4] ]"])
def test_simdjson_rows_are_what_orjson_and_float_rows_read(text):
    got = simd_rows.float_matrix(text, 2)
    want = tensors.float_rows(orjson.loads(text))
    assert got is not None and got.dtype == np.float64
    assert got.tobytes() == want.tobytes()  # bit for bit, signed zeros included


def test_one_parser_parses_again_after_a_refused_body():
    """A parser's document must be released before it parses again: every path out of `float_matrix` does."""
    for text in (b"[[1, 2], [3]]", b"[[1, true], [3, 4]]", b"[[1, 2], [3, 4]]", b"[[5, 6], [7, 8]]"):
        simd_rows.float_matrix(text, 2)
    assert simd_rows.float_matrix(b"[[5, 6], [7, 8]]", 2).tolist() == [[5, 6], [7, 8]]


@pytest.mark.parametrize("bad", [b"[1, [2], 3, 4]", b"[[1, 2, 3, 4]]", b"5", b"[1, 2, 3, 4, 5]", b"[1, 2, 3]"])
def test_a_body_simdjson_refuses_answers_as_the_line_by_line_path(bad, services, iris_features, monkeypatch):
    lines = [orjson.dumps(r.tolist()) for r in iris_features[[0, 60, 120]]]
    body = b"\n".join([lines[0], bad, *lines[1:]]) + b"\n"
    seen = spy(monkeypatch)
    fast = services["iris"].invocations(body, JSONL)
    assert seen["simd"] == 0
    monkeypatch.undo()
    assert (fast.body, dict(fast.headers)) == answers(services["iris"], body, slow=True, monkeypatch=monkeypatch)


def test_simdjson_is_imported_on_first_use_only():
    import subprocess
    import sys

    code = "import sys, mlfn.runtime.lambda_adapter, mlfn.runtime.app; print('simdjson' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "False"


def test_without_simdjson_the_orjson_path_answers_the_same(services, iris_features, monkeypatch):
    body = b"".join(orjson.dumps(r) + b"\n" for r in iris_features[::9].tolist())
    want = services["iris"].invocations(body, JSONL)
    monkeypatch.setattr(simd_rows, "_module", None)
    monkeypatch.setattr(simd_rows, "_MISSING", True)  # as an image without pysimdjson
    seen = spy(monkeypatch)
    got = services["iris"].invocations(body, JSONL)
    assert seen == {"simd": 0, "bulk": 1, "rows": 1}
    assert (got.body, dict(got.headers)) == (want.body, dict(want.headers))


@pytest.mark.parametrize("count", [1, 2, 255, 256, 257, 700])
@pytest.mark.parametrize("end", [b"\n", b"", b"\r\n"])
def test_a_body_becomes_one_array_whichever_way_its_newlines_are_found(count, end):
    lines = [b"[%d, 2.5]" % i if i % 3 != 1 else b" " for i in range(count)]  # blank lines count as lines too
    body = b"\n".join(lines) + end
    text, found = multi_record._as_array(body)
    want = bytearray(b"[" + body + (b"" if body.endswith(b"\n") else b"\n"))
    assert found == want.count(b"\n")
    assert bytes(text) == bytes(want.replace(b"\n", b","))[:-1] + b"]"
    assert multi_record._as_array(b" \n\t\n") is None and multi_record._as_array(b"") is None


@pytest.mark.parametrize("text", [b"", b"[", b"[[", b"[[[", b"x[y[z", b"[[1],[2]]"])
def test_the_nesting_check_counts_every_open_bracket(text):
    for count in range(5):
        assert simd_rows._opens_exactly(text, count) == (text.count(b"[") == count)


def test_a_small_body_skips_simdjson_and_answers_the_same(services, iris_features, monkeypatch):
    body = b"".join(orjson.dumps(r) + b"\n" for r in iris_features[:3].tolist())
    assert len(body) < multi_record.SIMD_MIN_BYTES
    calls = []
    monkeypatch.setattr(multi_record, "_float_matrix", lambda body: calls.append(body))
    small = services["iris"].invocations(body, JSONL)
    assert calls == []
    assert (small.body, dict(small.headers)) == answers(services["iris"], body, slow=True, monkeypatch=monkeypatch)
