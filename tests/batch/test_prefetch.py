"""Reading ahead (`cli/batch/prefetch.py`): items in order, at most `depth` ahead, an error raised where it
happened, and the thread gone when the reader stops early."""

from __future__ import annotations

import threading

import pytest

from mlfn.cli.batch.prefetch import ahead


def test_items_come_in_order_and_no_more_than_depth_ahead() -> None:
    made: list[int] = []

    def source():
        for i in range(20):
            made.append(i)
            yield i

    items = ahead(source(), depth=3)
    assert next(items) == 0
    threading.Event().wait(0.3)  # give the thread time to run ahead as far as it may
    assert len(made) <= 1 + 3 + 1  # the one taken, `depth` queued, one waiting to be put
    assert list(items) == list(range(1, 20))


def test_an_error_in_the_source_is_raised_at_its_place() -> None:
    def source():
        yield b"a"
        yield b"b"
        raise OSError("connection reset")

    items = ahead(source(), depth=2)
    assert next(items) == b"a" and next(items) == b"b"
    with pytest.raises(OSError, match="connection reset"):
        next(items)


def test_stopping_early_ends_the_thread() -> None:
    before = {t.ident for t in threading.enumerate()}
    items = ahead(iter(range(10**9)), depth=2)
    assert next(items) == 0
    items.close()
    assert not [t for t in threading.enumerate() if t.ident not in before and t.name == "mlfn-batch-read"]
