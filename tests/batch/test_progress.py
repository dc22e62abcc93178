"""Progress while a batch runs: records/s and the time left from the share of the input read."""

from __future__ import annotations

from mlfn.cli.batch.batches import batches
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


def test_calls_hold_at_most_the_records_and_bytes_asked() -> None:
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
        got = [(r.line, r.body) for r in lines([data[:cut], data[cut:]])]
        assert got == [(1, b"[1]"), (3, b"[2]"), (5, b"[3]")], cut
