"""Records out of S3 objects, streamed: never more than one chunk and one line in memory.

An object's format comes from its name: `.jsonl`/`.ndjson` are JSON Lines, `.csv` rows of numbers (no header);
anything else is one record per object (an image, a JSON document, a text), sent with the type its suffix names.
Lines are records; a blank line is no record (it is skipped, and counted in no total). `mlfn batch` cuts its calls
straight from the chunks (`batches.calls`); `lines` and `batches.batches` give a Record per line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from mlfn.runtime.codecs.csv import CONTENT_TYPE as CSV
from mlfn.runtime.multi_record import CONTENT_TYPE as JSONL

_LINE_FORMATS = {".jsonl": JSONL, ".ndjson": JSONL, ".csv": CSV}
_OBJECT_TYPES = {".json": "application/json", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                 ".txt": "text/plain", ".npy": "application/x-npy"}


class Record(NamedTuple):
    """One record (a tuple: made once per input line, so it must be cheap to make)."""

    line: int | None  # 1-based line in its object; None for a one-record object
    body: bytes
    end: int  # bytes of the object read up to the end of this record (progress)


def format_of(key: str) -> tuple[str, bool]:
    """(content type, True when each line is a record) for an object named `key`."""
    suffix = "." + key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
    if suffix in _LINE_FORMATS:
        return _LINE_FORMATS[suffix], True
    return _OBJECT_TYPES.get(suffix, "application/octet-stream"), False


def lines(chunks: Iterable[bytes], skip: int = 0) -> Iterator[Record]:
    """The non-blank lines of a byte stream as records, after the first `skip` of them (a resumed object).
    Each chunk is split in one call; a line cut by a chunk's end waits for the next chunk."""
    pending = b""
    offset = 0  # bytes of the object up to the end of the last whole line
    line_no = seen = 0
    for chunk in chunks:
        parts = (pending + chunk if pending else chunk).split(b"\n")
        pending = parts.pop()
        for text in parts:
            line_no += 1
            offset += len(text) + 1
            if text.endswith(b"\r"):
                text = text[:-1]
            if not text or (text[0] in SPACE and not text.strip()):
                continue
            seen += 1
            if seen > skip:
                yield Record(line_no, text, offset)
    if pending.strip() and seen + 1 > skip:
        yield Record(line_no + 1, pending.rstrip(b"\r"), offset + len(pending))


SPACE = frozenset(b" \t\r\x0b\x0c")  # a line starting with none of these is not blank (no strip copy)
