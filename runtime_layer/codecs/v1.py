"""KServe v1 (TensorFlow Serving style) JSON: `{"instances": [...]}` or `{"inputs": ...}` -> `{"predictions": [...]}`.

- `instances` is row format: one entry per example. A single-input model takes the rows themselves (or
  objects keyed by its input name); a multi-input model takes objects keyed by input name.
- `inputs` is columnar: the whole batch per input, as an object keyed by input name or, for a
  single-input model, the tensor itself.
- a bare JSON string is one text, for a model whose one input takes raw text (`codecs.text`).

Predictions hold one entry per instance; a multi-output model's entries are objects keyed by output name.
When the model's inputs have no dynamic batch dimension, each instance runs on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import RequestError
from ..record import record
from . import text
from .tensors import Port

EXPECTED = 'a JSON object with "instances" (a list of rows) or "inputs"'


@record(slots=True)
class Batch:
    """Decoded feeds: one run over `rows` stacked instances, or (not batched) one run per instance."""

    runs: list[dict[str, Any]]
    rows: int
    stacked: bool  # True: one run holds every row along the first dimension


def decode(doc: Any, ports: Mapping[str, Port], batched: bool, booleans: bool = True, plain: bool = False) -> Batch:
    """Feeds from a parsed v1 request body (`booleans=False`: the body has no `true`/`false`, see
    `tensors.may_hold_booleans`; `plain=True`: only numbers and lists, see `tensors.only_numbers`)."""
    # a bare list of rows (or multi_record's float64 matrix of them): its errors name the body, not an "instances"
    if isinstance(doc, list | np.ndarray):
        return decode_instances(doc, ports, batched, booleans, "the request body (a JSON list of rows)", plain)
    if isinstance(doc, str) and (port := text.port_of(ports)) is not None:  # one raw text
        return Batch([{port.name: text.one(doc, port)}], 1, batched)
    if not isinstance(doc, dict):
        raise RequestError(f"expected {EXPECTED}, got {_kind(doc)}", expected=EXPECTED, received=_kind(doc))
    if "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise RequestError(f'"instances" must be a list of rows, got {_kind(instances)}',
                               expected="a list", received=_kind(instances))
        return decode_instances(instances, ports, batched, booleans)
    if "inputs" in doc:
        return decode_columns(doc["inputs"], ports, batched, booleans)
    keys = ", ".join(map(repr, doc)) or "none"
    raise RequestError(f"expected {EXPECTED}, got an object with keys {keys}", expected=EXPECTED, received=keys)


def decode_instances(instances: list[Any] | np.ndarray, ports: Mapping[str, Port], batched: bool, booleans: bool = True,
                     what: str = '"instances"', plain: bool = False) -> Batch:
    if len(instances) == 0:
        raise RequestError(f"{what} is empty; expected at least one row", expected="at least one row",
                           received="[]")
    single = next(iter(ports.values())) if len(ports) == 1 else None
    if single is not None and not isinstance(instances[0], dict):  # rows are the single input's values
        if batched:
            return Batch([{single.name: single.from_json(instances, booleans, plain)}], len(instances), True)
        return Batch([{single.name: single.from_json(row, booleans)} for row in instances], len(instances), False)
    rows = [_keyed(instance, i, ports) for i, instance in enumerate(instances)]
    if not batched:
        return Batch([{n: ports[n].from_json(v, booleans) for n, v in row.items()} for row in rows], len(rows), False)
    feeds = {name: port.from_json([row[name] for row in rows], booleans) for name, port in ports.items()}
    return Batch([feeds], len(rows), True)


def _keyed(instance: Any, index: int, ports: Mapping[str, Port]) -> dict[str, Any]:
    names = ", ".join(ports)
    if not isinstance(instance, dict):
        raise RequestError(f"instance {index} is {_kind(instance)}; this model has inputs {names}, so each "
                           "instance must be an object keyed by input name",
                           expected=f"an object with keys {names}", received=_kind(instance), instance=index)
    for key in instance:
        if key not in ports:
            raise RequestError(f"instance {index}: unknown input {key!r}; the model's inputs are {names}",
                               input=key, expected=names, instance=index)
    for name in ports:
        if name not in instance:
            raise RequestError(f"instance {index}: missing input {name!r}; the model's inputs are {names}",
                               input=name, expected=names, received=", ".join(instance) or "no keys",
                               instance=index)
    return instance


def decode_columns(columns: Any, ports: Mapping[str, Port], batched: bool, booleans: bool = True) -> Batch:
    """Columnar `inputs`: one run over the whole tensors (one prediction when the model has no batch dimension)."""
    feeds: dict[str, Any]
    if isinstance(columns, dict):
        # unknown names pass through as they are: Model.check names them with the model's inputs
        feeds = {name: values if (port := ports.get(name)) is None else port.from_json(values, booleans)
                 for name, values in columns.items()}
    elif len(ports) == 1:
        port = next(iter(ports.values()))
        feeds = {port.name: port.from_json(columns, booleans)}
    else:
        names = ", ".join(ports)
        raise RequestError(f'"inputs" must be an object keyed by input name ({names}), got {_kind(columns)}',
                           expected=f"an object with keys {names}", received=_kind(columns))
    return Batch([feeds], rows_of(feeds), True) if batched else Batch([feeds], 1, False)


def rows_of(feeds: Mapping[str, Any]) -> int:
    for value in feeds.values():
        if isinstance(value, np.ndarray) and value.ndim:
            return int(value.shape[0])
    return 1


def predictions(results: Sequence[dict[str, Any]], batch: Batch, names: Sequence[str]) -> Any:
    """The `predictions` list: one entry per instance, objects keyed by output name for several outputs."""
    if not batch.stacked:
        if len(names) == 1:
            return [r[names[0]] for r in results]
        return [{n: r[n] for n in names} for r in results]
    outputs = results[0]
    rows = batch.rows
    if len(names) == 1:
        value = outputs[names[0]]
        return value if _splits(value, rows) else [value]
    columns = [(n, _split(v) if _splits(v := outputs[n], rows) else None, v) for n in names]
    return [{n: (col[i] if col is not None else whole) for n, col, whole in columns} for i in range(rows)]


def _split(value: Any) -> Sequence[Any]:
    """A value's rows: integers and booleans as Python values (exact, and fast to make), else array rows."""
    if isinstance(value, np.ndarray):
        rows: list[Any] = value.tolist() if value.ndim == 1 and value.dtype.kind in "biu" else list(value)
        return rows
    return list(value)  # a list (ZipMap): already one entry per row


def _splits(value: Any, rows: int) -> bool:
    """The value has one entry per row."""
    if isinstance(value, np.ndarray):
        return value.ndim > 0 and value.shape[0] == rows
    return isinstance(value, list) and len(value) == rows


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number"}.get(type(value), f"a {type(value).__name__}")
