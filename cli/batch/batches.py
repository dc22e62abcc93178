"""Records grouped into calls: up to `records` per call and `max_bytes` of body (a Batch Transform job's
MultiRecord strategy fills each request up to MaxPayloadInMB the same way). A record larger than the limit goes
alone, and the model's 413 becomes its error record.

`calls` cuts a line format's calls straight from the object's chunks: a run of lines that need no change (no blank
line between them, no `\\r`) is one slice of the chunk, so a call's body is made with one copy and no Python object
per record but its line number. A one-record object is one call (`whole`). `batches` groups `readers.Record`s the
same way (the emulator's transform containers read objects so)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .readers import SPACE, Record


class Call(NamedTuple):
    """One call's records: the body to send (each record ending in a newline) and where they are in the object."""

    body: bytes
    lines: list[int | None]  # each record's 1-based line (None: a one-record object)
    end: int  # bytes of the object read up to the end of the last record (progress)


def batches(records: Iterable[Record], max_records: int, max_bytes: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    size = 0
    for record in records:
        grown = size + len(record.body) + 1
        if batch and (len(batch) >= max_records or grown > max_bytes):
            yield batch
            batch, grown = [], len(record.body) + 1
        batch.append(record)
        size = grown
    if batch:
        yield batch


def whole(body: bytes) -> Call:
    """A one-record object's call."""
    return Call(body, [None], len(body))


def calls(chunks: Iterable[bytes], max_records: int, max_bytes: int, skip: int = 0) -> Iterator[Call]:
    """The calls over a line format's byte stream, after its first `skip` records (a resumed object): the same
    records (non-blank lines, a final `\\r` dropped), up to `max_records` and `max_bytes` (each record with its
    newline) per call."""
    builder = _Builder(max_records, max_bytes)
    data = b""  # the unread bytes: a line cut by the last chunk's end, then the next chunk
    offset = 0  # bytes of the object before data[0]
    line_no = seen = 0
    for chunk in chunks:
        data = data + chunk if data else chunk
        builder.rebase(data)
        find = data.find
        pos = 0
        while (nl := find(b"\n", pos)) >= 0:
            line_no += 1
            start, pos = pos, nl + 1
            stop = nl - 1 if nl > start and data[nl - 1] == _CR else nl
            if stop == start or (data[start] in SPACE and not data[start:stop].strip()):
                continue
            seen += 1
            if seen > skip and (done := builder.add(start, stop, line_no, offset + pos)) is not None:
                yield done
        offset += pos
        data = data[pos:]
    builder.rebase(data)
    if data.strip() and seen + 1 > skip:
        text = data.rstrip(b"\r")
        if (done := builder.add_text(text, line_no + 1, offset + len(data))) is not None:
            yield done
    if builder.lines:
        yield builder.take()


_CR = ord("\r")


class _Builder:
    """The call being filled: finished pieces of body, and the run of lines still in the current chunk."""

    def __init__(self, max_records: int, max_bytes: int) -> None:
        self.max_records, self.max_bytes = max_records, max_bytes
        self.data = b""
        self.pieces: list[bytes] = []
        self.lines: list[int | None] = []
        self.size = self.end = 0
        self.run_start = self.run_end = -1  # data[run_start:run_end]: whole lines, newlines included

    def rebase(self, data: bytes) -> None:
        """The chunk changes: the run so far becomes a piece."""
        self._flush()
        self.data = data

    def _flush(self) -> None:
        if self.run_start >= 0:
            self.pieces.append(self.data[self.run_start:self.run_end])
            self.run_start = -1

    def _room(self, length: int) -> Call | None:
        """The call so far when a record of `length` bytes does not fit in it."""
        if self.lines and (len(self.lines) >= self.max_records or self.size + length + 1 > self.max_bytes):
            return self.take()
        return None

    def add(self, start: int, stop: int, line: int, end: int) -> Call | None:
        """Add data[start:stop] (its newline at `stop`, or a `\\r` there); returns the call it did not fit in."""
        done = self._room(stop - start)
        if self.data[stop] == _CR:
            self._flush()
            self.pieces.append(self.data[start:stop] + b"\n")
        elif start == self.run_end and self.run_start >= 0:
            self.run_end = stop + 1
        else:
            self._flush()
            self.run_start, self.run_end = start, stop + 1
        self.lines.append(line)
        self.size += stop - start + 1
        self.end = end
        return done

    def add_text(self, text: bytes, line: int, end: int) -> Call | None:
        """Add a record that is not in the chunk as it stands (the last line, with no newline)."""
        done = self._room(len(text))
        self._flush()
        self.pieces.append(text + b"\n")
        self.lines.append(line)
        self.size += len(text) + 1
        self.end = end
        return done

    def take(self) -> Call:
        """The call filled so far; the builder starts an empty one."""
        self._flush()
        pieces = self.pieces
        call = Call(pieces[0] if len(pieces) == 1 else b"".join(pieces), self.lines, self.end)
        self.pieces, self.lines, self.size = [], [], 0
        return call
