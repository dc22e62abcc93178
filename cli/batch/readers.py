"""What an S3 object's records are. An object's format comes from its name: `.jsonl`/`.ndjson` are JSON Lines,
`.csv` rows of numbers (no header); anything else is one record per object (an image, a JSON document, a text),
sent with the type its suffix names. Lines are records; a blank line is no record (it is skipped, and counted in
no total). `batches.calls` streams them.
"""

from __future__ import annotations

from mlfn.runtime.codecs.csv import CONTENT_TYPE as CSV
from mlfn.runtime.multi_record import CONTENT_TYPE as JSONL

_LINE_FORMATS = {".jsonl": JSONL, ".ndjson": JSONL, ".csv": CSV}
_OBJECT_TYPES = {".json": "application/json", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                 ".txt": "text/plain", ".npy": "application/x-npy"}


def format_of(key: str) -> tuple[str, bool]:
    """(content type, True when each line is a record) for an object named `key`."""
    suffix = "." + key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
    if suffix in _LINE_FORMATS:
        return _LINE_FORMATS[suffix], True
    return _OBJECT_TYPES.get(suffix, "application/octet-stream"), False


SPACE = frozenset(b" \t\r\x0b\x0c")  # a line starting with none of these is not blank (no strip copy)
