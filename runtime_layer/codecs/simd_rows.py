"""Rows of numbers parsed by simdjson (pysimdjson) straight into a float64 matrix: a JSON Lines body of plain numeric
rows, made one JSON array, read with no Python object per value (about three times quicker than orjson's lists
then `np.fromiter`).

`as_buffer` flattens whatever arrays it finds and checks only that every leaf is a number: a ragged or nested body
would come back flat. So the matrix is taken only when the document is an array of exactly `rows` arrays, each as
long as the first, and the text holds exactly one `[` per row besides the outer one (no nesting). Anything else is
None, for the caller's general path to parse and to name what is wrong. A parser's document (and every `Array`
taken from it) must be gone before that parser parses again: one parser per thread, and no proxy outlives
`float_matrix`. simdjson is imported on first use, never at start-up.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import numpy as np

_local = threading.local()
_module: ModuleType | None = None
_MISSING = False  # simdjson could not be imported: never tried again


def available() -> bool:
    """Whether pysimdjson can be imported here (imports it on the first call)."""
    return _simdjson() is not None


def _simdjson() -> ModuleType | None:
    global _module, _MISSING
    if _module is None and not _MISSING:
        try:
            import simdjson
        except ImportError:  # an image without it: the orjson path answers the same
            _MISSING = True
            return None
        _module = simdjson
    return _module


def float_matrix(text: bytes | bytearray, rows: int) -> np.ndarray | None:
    """`text`, one JSON array of `rows` rows of numbers (integers or floats, all rows one length, no nesting), as a
    float64 array of shape (rows, width); None when it is anything else or simdjson is unavailable."""
    simdjson = _simdjson()
    if simdjson is None or rows < 1 or not _opens_exactly(text, rows + 1):
        return None
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    buffer, width = _flat(parser, simdjson.Array, text, rows)
    if buffer is None:
        return None
    flat = np.frombuffer(buffer, np.float64)
    return flat.reshape(rows, width) if flat.size == rows * width else None


def _opens_exactly(text: bytes | bytearray, count: int) -> bool:
    """Whether `text` holds exactly `count` `[` bytes (a `find` each: quicker than `count` on this many bytes)."""
    find = text.find
    at = -1
    for _ in range(count):
        at = find(b"[", at + 1)
        if at < 0:
            return False
    return find(b"[", at + 1) < 0


def _flat(parser: Any, array_type: Any, text: bytes | bytearray, rows: int) -> tuple[Any, int]:
    """The document's values (a copy, which outlives the document) and its row length; (None, 0) if it is not
    `rows` equal rows of numbers. Every proxy of the document is released when this returns."""
    try:
        doc: Any = parser.parse(text)
    except (ValueError, RuntimeError, TypeError):  # not JSON, a number beyond 64 bits or float64's range
        return None, 0
    if type(doc) is not array_type or len(doc) != rows:
        return None, 0
    first = doc[0]
    width = len(first) if type(first) is array_type else 0
    del first
    if width == 0 or not all(type(row) is array_type and len(row) == width for row in doc):
        return None, 0
    try:
        buffer = doc.as_buffer(of_type="d")
    except (TypeError, ValueError, RuntimeError):  # a value that is not a number (a string, null, an object)
        return None, 0
    return buffer, width
