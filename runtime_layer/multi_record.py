"""Multi-record bodies on SageMaker's `/invocations`: what a Batch Transform job with `SplitType: Line` and
`BatchStrategy: MultiRecord` sends (several lines of one input object in one request).

- `application/jsonlines` (also `application/jsonl`, `application/x-ndjson`): one JSON record per line, each what
  one v1 instance is (a row, an object keyed by input name, or one text for a text model).
- `text/csv` with `Accept: application/jsonlines`: one CSV row per line. (A `text/csv` call that does not ask for
  JSON Lines keeps its old meaning: one table, one answer, failing as a whole.)

The answer is JSON Lines in the same order, exactly one line per record: the record's prediction as v1 gives it,
or for a record that cannot be scored `{"error": ..., "status": 4xx/500, "record": i}` (0-based, the other
records still scored). The `X-Mlfn-Failed-Records` header lists the failed records' indices (comma-separated),
so a client never has to guess whether an object line is a prediction or an error. Records run stacked, up to
`server.max_rows` per run; only when a stacked run is refused are the records of that run scored one by one.
A final newline ends the last record; an empty line elsewhere is a record of its own (refused, so the answer
still holds one line per input line).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from .codecs import csv, simd_rows
from .codecs.tensors import dumps
from .errors import ModelError, RequestError

CONTENT_TYPE = "application/jsonlines"
JSONLINES_TYPES = frozenset({CONTENT_TYPE, "application/jsonl", "application/x-jsonlines", "application/x-ndjson"})
FAILED_HEADER = "x-mlfn-failed-records"
Predict = Callable[[Any], Sequence[Any]]
"""Scores records stacked (a list of them, or with `matrix=True` a float64 2-D array of rows): one prediction per
record, or raises RequestError/ModelError."""


def applies(kind: str, headers: Mapping[str, str]) -> bool:
    """The body is multi-record: JSON Lines in, or CSV in with JSON Lines asked for."""
    if kind in JSONLINES_TYPES:
        return True
    return kind == csv.CONTENT_TYPE and _asks_jsonlines(headers.get("accept", ""))


def _asks_jsonlines(accept: str) -> bool:
    return any(item.split(";", 1)[0].strip().lower() in JSONLINES_TYPES for item in accept.split(","))


def answer(body: bytes, kind: str, predict: Predict, max_rows: int,
           matrix: bool = False) -> tuple[bytes, dict[str, str]]:
    """The JSON Lines answer to a multi-record body and its headers (the failed records' indices). `matrix=True`:
    `predict` takes rows of numbers as a float64 2-D array (one floating-point input, batched, a body of numbers
    only), so a body of equal rows is parsed straight into one (`_float_matrix`)."""
    bulk: Any = None  # a list of parsed records, or a float64 matrix of rows
    if kind != csv.CONTENT_TYPE:
        bulk = _float_matrix(body) if matrix and len(body) >= SIMD_MIN_BYTES else None
        if bulk is None:
            bulk = _bulk_json(body)
    if bulk is not None:  # every line one valid JSON value: parsed in one call, no line split
        records: Sequence[Any] = bulk
        out: list[bytes | None] = [None] * len(bulk)
    else:
        lines = split_lines(body)
        if not lines:
            raise RequestError(f"the {kind} body holds no records; expected one record per line",
                               expected="one record per line", received="an empty body")
        records, out = (_csv_records if kind == csv.CONTENT_TYPE else _json_records)(lines)
    good = [i for i, line in enumerate(out) if line is None]
    for start in range(0, len(good), max(1, max_rows)):
        chunk = good[start:start + max(1, max_rows)]
        taken = records[chunk[0]:chunk[-1] + 1] if isinstance(records, np.ndarray) else [records[i] for i in chunk]
        for i, line in zip(chunk, _score(taken, chunk, predict), strict=True):
            out[i] = line
    failed = [i for i, line in enumerate(out) if line is not None and line.startswith(_ERROR_MARK)]
    headers = {FAILED_HEADER: ",".join(map(str, failed))} if failed else {}
    return b"\n".join(line.removeprefix(_ERROR_MARK) for line in out if line is not None) + b"\n", headers


SIMD_MIN_BYTES = 4096  # below this, orjson's lists and `np.fromiter` are as quick (64 rows of 4 numbers: 1.4 KB)
_ERROR_MARK = b"\x00"  # an error line in `out` until the answer is joined (JSON text never starts with NUL)


def batch_items(event: Any) -> bytes | None:
    """A Step Functions Distributed Map batch (`{"Items": [...]}`, with an optional `BatchInput`, as its
    ItemBatcher passes it) as a JSON Lines body; None for any other event."""
    if isinstance(event, dict) and isinstance(event.get("Items"), list) and set(event) <= {"Items", "BatchInput"}:
        return b"".join(orjson.dumps(item) + b"\n" for item in event["Items"])
    return None


def split_lines(body: bytes) -> list[bytes]:
    """A body's records: its lines (`\\n` or `\\r\\n`), the final newline ending the last record."""
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _error(index: int, message: str, status: int = 400) -> bytes:
    return _ERROR_MARK + orjson.dumps({"error": message, "status": status, "record": index})


def _bulk_json(body: bytes) -> list[Any] | None:
    """Every record of a JSON Lines body, parsed in one call as one JSON array (the body's newlines made commas,
    in a single copy of it); None when that is not exactly one valid value per line (a blank or bad line, or a
    line holding `1,2`), for `_json_records` to find which records are bad."""
    joined = _as_array(body)
    if joined is None:
        return None
    text, count = joined
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return parsed if len(parsed) == count else None


def _float_matrix(body: bytes) -> np.ndarray | None:
    """A JSON Lines body of equal rows of numbers as a float64 (records, width) array, parsed by simdjson with no
    Python object per value (`codecs.simd_rows`); None for any other body (or without simdjson), which then takes
    `_bulk_json`'s path, answering the same."""
    joined = _as_array(body)
    return None if joined is None else simd_rows.float_matrix(*joined)


def _as_array(body: bytes) -> tuple[bytearray, int] | None:
    """A JSON Lines body as the text of one JSON array (its newlines made commas, in one copy) and its count of
    lines (a JSON text holds no raw newline: each one ends a record); None for a blank body. The first
    `_FOUND_ONE_BY_ONE` newlines are found one `find` at a time (long lines: a few calls of `memchr`), any more
    in one numpy pass (many short lines)."""
    if not body or body.isspace():
        return None
    text = bytearray(b"[")
    text += body
    if text[-1] != _NL:
        text.append(_NL)
    find = text.find
    count = 0
    at = find(b"\n", 1)
    while at >= 0:
        text[at] = _COMMA
        count += 1
        if count == _FOUND_ONE_BY_ONE:
            view = np.frombuffer(text, np.uint8)[at + 1:]
            newlines = view == _NL
            count += int(np.count_nonzero(newlines))
            view[newlines] = _COMMA
            del view, newlines  # the bytearray's buffer is exported while a view holds it
            break
        at = find(b"\n", at + 1)
    text[-1] = _CLOSE
    return text, count


_FOUND_ONE_BY_ONE = 256
_NL, _COMMA, _CLOSE = ord("\n"), ord(","), ord("]")


def _json_records(lines: list[bytes]) -> tuple[list[Any], list[bytes | None]]:
    """Parse line by line, each bad line its own error (`_bulk_json` found that not every line is good)."""
    out: list[bytes | None] = [None] * len(lines)
    records: list[Any] = [None] * len(lines)
    for i, line in enumerate(lines):
        if not line.strip():
            out[i] = _error(i, f"record {i} is an empty line; expected one JSON value per line")
            continue
        try:
            records[i] = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            out[i] = _error(i, f"record {i} is not JSON: {str(exc).split(':', 1)[0]} at column {exc.colno}")
    return records, out


def _csv_records(lines: list[bytes]) -> tuple[list[Any], list[bytes | None]]:
    """One row of numbers per CSV line."""
    out: list[bytes | None] = [None] * len(lines)
    records: list[Any] = [None] * len(lines)
    for i, line in enumerate(lines):
        try:
            records[i] = [float(value) for value in line.split(b",")]
        except ValueError:
            shown = line[:40].decode("utf-8", "replace")
            out[i] = _error(i, f"record {i} ({shown!r}) is not a CSV row of numbers")
    return records, out


def _score(records: Sequence[Any], indices: list[int], predict: Predict) -> list[bytes]:
    """One answer line per record: one stacked run, or (when it is refused) a run per record."""
    if len(records) > 1:
        try:
            predictions = _unwrapped(predict(records))
            if _one_each(predictions, len(records)):
                return rows_json(predictions)
        except (RequestError, ModelError):
            pass
    return [_alone(record, index, predict) for record, index in zip(records, indices, strict=True)]


def _one(record: Any) -> Any:
    """A run of one record: a list of it, or a row of a matrix as a matrix of one row."""
    return record[np.newaxis] if isinstance(record, np.ndarray) else [record]


def rows_json(predictions: Any) -> list[bytes]:
    """Each prediction's JSON line; a numeric 1-D or 2-D array's in one `dumps` call, cut at its row boundaries
    (a numeric array's JSON holds no other `,` or `],[`), byte for byte what a call per row writes."""
    if isinstance(predictions, np.ndarray) and predictions.dtype.kind in "biuf" and predictions.ndim in (1, 2) \
            and len(predictions) > 1:
        text = dumps(predictions)
        if predictions.ndim == 1:
            parts = text[1:-1].split(b",")
        else:
            parts = [b"[" + part + b"]" for part in text[2:-2].split(b"],[")]
        if len(parts) == len(predictions):
            return parts
    return [dumps(p) for p in predictions]


def _alone(record: Any, index: int, predict: Predict) -> bytes:
    """A record's line from a run of its own: its prediction (postprocess may answer with something else than one
    prediction per record: then all of it), or its error."""
    try:
        predictions = _unwrapped(predict(_one(record)))
    except (RequestError, ModelError) as exc:
        return _error(index, f"record {index}: {exc.message}", exc.status)
    return dumps(predictions[0] if _one_each(predictions, 1) else predictions)


def _one_each(predictions: Any, count: int) -> bool:
    """The predictions are a sequence with one entry per record (a postprocess hook may answer otherwise)."""
    return not isinstance(predictions, str | bytes | Mapping) and hasattr(predictions, "__len__") \
        and len(predictions) == count


def _unwrapped(answer: Any) -> Any:
    """The predictions of an answer that a postprocess hook shaped as a v1 document (`{"predictions": [...]}`)."""
    if isinstance(answer, Mapping) and isinstance(answer.get("predictions"), list):
        return answer["predictions"]
    return answer
