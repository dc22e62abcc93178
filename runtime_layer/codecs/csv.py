"""SageMaker's `text/csv`: rows of numbers for a model with one numeric 1-D or 2-D input, and CSV out.

Each line is one row; there is no header (a line that is not numbers is refused, naming the line).
Parsing is numpy's C reader (`np.loadtxt`), or for a few rows a split and one `np.asarray`.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np

from ..errors import RequestError
from .tensors import Port

CONTENT_TYPE = "text/csv"
SMALL_BODY = 4096  # characters: below this, splitting in Python beats numpy's reader
_CONVERT = re.compile(r"(string '.*') to \w+ at row (\d+), column (\d+)")
_CHANGED = re.compile(r"columns changed from (\d+) to (\d+) at row (\d+)")


def accepts(port: Port) -> bool:
    """Whether CSV can feed this input: numeric or boolean, rank 1 or 2 (or unknown)."""
    return port.dtype.name not in ("string", "bfloat16") and (port.rank is None or port.rank in (1, 2))


def decode(body: bytes, port: Port) -> np.ndarray:
    """The rows of a CSV body as an array for `port`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"text/csv body is not UTF-8 (byte {exc.start})", expected="UTF-8 text",
                           received="binary data") from None
    if not text.strip():
        raise port.error("the CSV body is empty", "no rows")
    array = _parse(text, port)
    if port.rank == 1:
        if array.shape[1] != 1:
            raise port.error("one value per CSV line", f"{array.shape[1]} columns")
        array = array[:, 0]
    return port.decoded(array)


def _parse(text: str, port: Port) -> np.ndarray:
    """Rows of floats. Small bodies split in Python (numpy's reader has a fixed cost of several
    microseconds); large ones, and any body that fails, go through `np.loadtxt`, whose errors name the place."""
    if len(text) <= SMALL_BODY:
        try:
            array = np.asarray([line.split(",") for line in text.splitlines() if line.strip()], dtype=np.float64)
            if array.ndim == 2:
                return array
        except ValueError:
            pass
    try:
        return np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError as exc:
        raise port.error("CSV rows must be numbers only, with no header", _locate(str(exc))) from None


def _locate(message: str) -> str:
    """numpy's error made to name the line (its conversion errors count rows from 0, column counts from 1)."""
    first = message.split(";", 1)[0].rstrip(".")
    convert = _CONVERT.search(first)
    if convert:
        return f"{convert.group(1)} on line {int(convert.group(2)) + 1}, column {convert.group(3)}"
    changed = _CHANGED.search(first)
    if changed:
        return f"{changed.group(2)} values on line {changed.group(3)} after lines of {changed.group(1)}"
    return first


def can_encode(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.ndim in (1, 2) and value.dtype.kind in "biufOU"


def encode(value: np.ndarray) -> bytes:
    """One CSV line per row."""
    rows = value.reshape(len(value), -1) if value.ndim == 1 else value
    kind = value.dtype.kind
    if kind == "f":
        fmt = "%.9g" if value.dtype.itemsize <= 4 else "%.17g"
    elif kind in "iu":
        fmt = "%d"
    elif kind == "b":
        rows = rows.astype(np.uint8)
        fmt = "%d"
    else:
        fmt = "%s"
    out = io.StringIO()
    np.savetxt(out, rows, fmt=fmt, delimiter=",")
    return out.getvalue().encode("utf-8")
