"""Progress while a batch runs: records/s and the time left from the share of the input read."""

from __future__ import annotations

import pytest

from mlfn.cli.batch.batches import batches, calls
from mlfn.cli.batch.progress import Progress
from mlfn.cli.batch.readers import Record, format_of, lines


def test_progress_says_records_per_second_and_time_left() -> None:
    said: list[str] = []
    progress = Progress(total_bytes=1000, say=said.append, every_s=0)
    progress.started -= 2.0  # two seconds in
    progress.add(500, 3, 250)
    assert said and "500 records (3 failed)" in said[-1] and "25% of the input" in said[-1]
    assert 240 <= progress.rate() <= 250
    eta = progress.eta_s()
    assert eta is not None and 5.9 <= eta <= 6.1  # 750 bytes left at 125 bytes/s
    assert "about 00:00:0" in said[-1]


def sizes(data: bytes, records: int, max_bytes: int) -> list[int]:
    return [len(c.lines) for c in calls([data], records, max_bytes)]


def test_calls_hold_at_most_the_records_and_bytes_asked() -> None:
    data = b"".join(b"x" * 10 + b"\n" for _ in range(10))
    assert sizes(data, 4, 10_000) == [4, 4, 2]
    assert sizes(data, 100, 23) == [2, 2, 2, 2, 2]  # 11 bytes each with its newline
    assert sizes(b"y" * 50 + b"\n" + data[:22], 100, 23) == [1, 2]
    assert sizes(data.replace(b"\n", b"\r\n"), 100, 23) == [2, 2, 2, 2, 2]  # a dropped `\r` is no byte of a record


def test_records_group_into_calls_of_at_most_the_records_and_bytes_asked() -> None:
    records = [Record(i + 1, b"x" * 10, 0) for i in range(10)]
    assert [len(b) for b in batches(records, 4, 10_000)] == [4, 4, 2]
    assert [len(b) for b in batches(records, 100, 23)] == [2, 2, 2, 2, 2]  # 11 bytes each with its newline
    assert [len(b) for b in batches([Record(1, b"y" * 50, 0), *records[:2]], 100, 23)] == [1, 2]


def test_formats_and_line_numbers_of_a_stream_cut_anywhere() -> None:
    assert format_of("a/b.jsonl") == ("application/jsonlines", True)
    assert format_of("a/b.CSV") == ("text/csv", True)
    assert format_of("a/7.png") == ("image/png", False)
    data = b'[1]\n\n[2]\r\n  \n[3]'
    for cut in range(1, len(data)):
        got = [(c.lines, c.body, c.end) for c in calls([data[:cut], data[cut:]], 2, 10_000)]
        assert got == [([1, 3], b"[1]\n[2]\n", 10), ([5], b"[3]\n", len(data))], cut
        got_lines = [(r.line, r.body) for r in lines([data[:cut], data[cut:]])]
        assert got_lines == [(1, b"[1]"), (3, b"[2]"), (5, b"[3]")], cut


STREAMS = [b"[1]\n[2]\n[3]\n", b"[1]\n[2]\n[3]", b"\n\n[1]\r\n\t \n[2]\n\r\n[3]\r\r", b"[1]\r\n[2]\r\n[3]\r\n",
           b" [1]\n [2] \n[3]"]


@pytest.mark.parametrize("data", STREAMS)
@pytest.mark.parametrize("records", [1, 2, 5])
@pytest.mark.parametrize("skip", [0, 1, 3])
def test_a_call_holds_the_same_records_however_the_stream_is_cut(data: bytes, records: int, skip: int) -> None:
    """Each record is its line less a final `\r` and ends in a newline; a resumed object skips whole records."""
    want = [line.removesuffix(b"\r") for line in data.split(b"\n") if line.strip()]
    want = [line.rstrip(b"\r") for line in want][skip:]
    for cut in range(len(data) + 1):
        got = list(calls([data[:cut], b"", data[cut:]], records, 10_000, skip=skip))
        assert b"".join(c.body for c in got) == b"".join(line + b"\n" for line in want), cut
        assert [len(c.lines) for c in got] == [min(records, len(want) - i) for i in range(0, len(want), records)]
        if got:
            assert got[-1].end == len(data)


@pytest.mark.parametrize("data", STREAMS)
@pytest.mark.parametrize(("records", "max_bytes"), [(1, 10_000), (2, 10_000), (100, 8), (100, 9)])
def test_calls_are_the_records_of_lines_grouped_by_batches(data: bytes, records: int, max_bytes: int) -> None:
    for cut in range(len(data) + 1):
        chunks = [data[:cut], data[cut:]]
        want = [(b"".join(r.body + b"\n" for r in batch), [r.line for r in batch], batch[-1].end)
                for batch in batches(lines(chunks), records, max_bytes)]
        assert [tuple(c) for c in calls(chunks, records, max_bytes)] == want, cut
