"""Tensors between JSON values and numpy: the checks every protocol shares, computed once per model input.

Decoding is `np.asarray` on the lists orjson produced, then one vectorized cast to the input's dtype:
no per-element Python. A cast is only made when it keeps every value: integers may feed float inputs,
integral floats and in-range integers may feed integer inputs, 0/1 may feed booleans; strings never feed
numbers nor numbers strings. What a request sends (`Port.decoded`: JSON, CSV, .npy, binary tensors) must
also be finite (NaN, infinities and values beyond float32's or float16's range are refused, as JSON's NaN
and Infinity are by the parser) and never booleans standing for numbers (`true` would be 1): booleans feed
BOOL inputs only. A JSON body is searched for `true`/`false` once (`may_hold_booleans`), so lists are only
scanned for booleans when the body has some. Encoding is `orjson` with numpy support: NaN and infinities become `null`
(JSON has no literal for them; orjson writes null), bytes become `{"b64": ...}` as in KServe v1.
"""

from __future__ import annotations

import base64
import math
import warnings
from itertools import chain
from typing import Any

import numpy as np
import orjson

from ..dtypes import DTYPES, DType
from ..errors import RequestError
from ..onnx_signature import Dim
from ..record import record
from ..spec import TensorSpec

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
JSON_CONTENT_TYPE = "application/json"

_NUMERIC_KINDS = "biuf"
_FEW = 64  # elements: up to this many, a Python loop over the values is quicker than a numpy call
# A cast past float32's or float16's range gives infinities, which `Port.decoded` refuses with a 400 naming the
# value: numpy's warning about it would only repeat that in the log.
warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning, __name__)
_V2_BY_NUMPY: dict[np.dtype[Any], str] = {d.numpy: d.v2 for d in DTYPES if d.numpy is not None}
_V2_BY_NUMPY.update({np.dtype(np.str_): "BYTES", np.dtype(np.bytes_): "BYTES"})


@record(slots=True)
class Port:
    """One model input with everything a request is checked against, precomputed."""

    name: str
    dtype: DType
    numpy: np.dtype[Any] | None  # None: numpy cannot hold it (bfloat16)
    shape: tuple[Dim, ...] | None
    fixed: tuple[tuple[int, int], ...]  # (axis, size) of every fixed dimension
    described: str  # e.g. "float32[?, 4]"
    batched: bool  # the first dimension is dynamic
    rank: int | None  # None: unknown

    @classmethod
    def of(cls, spec: TensorSpec) -> Port:
        if spec.dtype is None:  # pragma: no cover - load_spec refuses non-tensor inputs
            raise ValueError(f"input {spec.name!r} is not a tensor")
        shape = spec.shape
        fixed = tuple((axis, d) for axis, d in enumerate(shape or ()) if isinstance(d, int))
        return cls(spec.name, spec.dtype, spec.dtype.numpy, shape, fixed, spec.describe(), spec.has_batch_dim,
                   None if shape is None else len(shape))

    def error(self, problem: str, received: str, **details: object) -> RequestError:
        """A 400 naming this input, what was received and what was expected."""
        error = RequestError(
            f"input {self.name!r}: {problem}; expected {self.described}, got {received}",
            input=self.name, expected=self.described, received=received,
        )
        error.details.update(details)
        return error

    def require_numpy(self) -> np.dtype[Any]:
        if self.numpy is None:
            raise RequestError(
                f"input {self.name!r} is {self.dtype.name}, which numpy and so this server cannot hold",
                input=self.name, expected=self.described, received="any data",
            )
        return self.numpy

    def from_json(self, values: Any, booleans: bool = True, plain: bool = False) -> np.ndarray:
        """A JSON value (number, bool, string or nested lists of them) as an array of this input's dtype.
        `booleans=False` says the body holds no `true` or `false` (see `may_hold_booleans`): no scan for them.
        `plain=True` says it holds only numbers and lists (see `only_numbers`): rows of numbers for a
        floating-point input are read in one pass (`float_rows`), as `np.asarray` would read them."""
        if plain and self.numpy is not None and self.numpy.kind == "f" and (rows := float_rows(values)) is not None:
            return self.decoded(rows)
        try:
            array = np.asarray(values)
        except (ValueError, OverflowError) as exc:
            text = str(exc)
            if "inhomogeneous" in text:
                detail = text[text.find("inhomogeneous") :].split(". ", 1)[0].rstrip(".")
                raise self.error("nested lists are ragged", f"rows of different lengths ({detail})") from None
            raise self.error("values do not form an array", text) from None
        if booleans and array.dtype.kind in "iufU" and self.dtype.name != "bool" and _holds_bool(values):
            raise self.error(f"values must be {self._kind_of_values}, not booleans", "true or false among the values")
        if array.dtype.kind == "U" and self.dtype.name == "string" and not _only_strings(values):
            # numpy writes numbers among strings as text: `[0, "a"]` would feed "0"
            raise self.error("values must be strings", "numbers among the strings")
        if array.dtype.kind == "f" and self.numpy is not None and self.numpy.kind in "iu":
            # numpy infers float64 when JSON integers exceed int64 (or mix signs at uint64 scale): check the
            # values are whole numbers, then convert the original integers exactly (numpy checks the range).
            self._require_integral(array)
            try:
                return np.asarray(values, dtype=self.numpy)
            except (OverflowError, ValueError, TypeError):
                info = np.iinfo(self.numpy)
                raise self.error(f"values out of range {info.min}..{info.max}", "larger integers") from None
        return self.decoded(array)

    def decoded(self, array: np.ndarray) -> np.ndarray:
        """An array a request sent, in this input's dtype: `cast`, refusing booleans for anything but BOOL
        and any floating-point value that is not finite (NaN, infinities, values beyond the dtype's range)."""
        if array.dtype.kind == "b" and self.dtype.name != "bool":
            raise self.error(f"values must be {self._kind_of_values}, not booleans", "booleans")
        out = self.cast(array)
        if out.dtype.kind == "f" and out.size:
            flat = out.ravel()
            if not (all(map(math.isfinite, flat.tolist())) if flat.size <= _FEW else bool(np.isfinite(flat).all())):
                raise self.error("values must be finite numbers", _not_finite(out, array))
        return out

    @property
    def _kind_of_values(self) -> str:
        return "strings" if self.dtype.name == "string" else "numbers"

    def cast(self, array: np.ndarray) -> np.ndarray:
        """`array` in this input's dtype if that keeps every value; RequestError otherwise."""
        target = self.require_numpy()
        source = array.dtype
        kind, want = source.kind, target.kind
        if want == "O":  # ONNX string: an object array of str
            if kind == "U":
                return array.astype(object)
            if kind == "O" and all(type(v) is str for v in array.flat):
                return array
            if kind in "SO" and all(isinstance(v, str | bytes) for v in array.flat):
                return _as_text(array, self)
            if array.size == 0:
                return array.astype(object)
            raise self.error("values must be strings", _received(array))
        if source == target:
            return array
        if array.size == 0 and kind in _NUMERIC_KINDS:
            return array.astype(target)
        if kind not in _NUMERIC_KINDS:
            raise self.error("values are not numeric", _received(array))
        if want == "f":
            return array.astype(target)
        if want in "iu":
            if kind == "f":
                self._require_integral(array)
            if kind != "b":
                info = np.iinfo(target)
                low, high = array.min(), array.max()
                # floats compare against the exclusive bound 2**bits: float(info.max) rounds up to it
                too_high = high >= 2.0 ** (info.bits - (info.kind == "i")) if kind == "f" else high > info.max
                if low < info.min or too_high:
                    raise self.error(f"values out of range {info.min}..{info.max}", f"values from {low} to {high}")
            return array.astype(target)
        if want == "b":
            if kind in "iuf" and bool(np.all((array == 0) | (array == 1))):
                return array.astype(target)
            raise self.error("values must be booleans (or 0 and 1)", _received(array))
        raise self.error(f"values must be {self.dtype.name}", _received(array))  # pragma: no cover - kinds all handled

    def _require_integral(self, array: np.ndarray) -> None:
        if not bool(np.all(np.isfinite(array)) and np.all(np.trunc(array) == array)):
            raise self.error("values must be integers", _received(array))

    def check(self, value: Any) -> np.ndarray:
        """An array that fits this input (dtype cast as `cast` allows, rank, fixed dimensions)."""
        array: np.ndarray = value if isinstance(value, np.ndarray) else np.asarray(value)
        dtype = array.dtype
        # `is` first: numpy's built-in dtypes are singletons. Strings (object arrays) are always looked at.
        if (dtype is not self.numpy and dtype != self.numpy) or dtype.kind == "O":
            array = self.cast(array)
        rank = self.rank
        if rank is not None:
            shape = array.shape
            if len(shape) != rank:
                raise self.error(f"wrong rank {array.ndim}", f"shape {list(shape)}")
            for axis, size in self.fixed:
                if shape[axis] != size:
                    raise self.error(f"dimension {axis} must be {size}", f"shape {list(shape)}")
        return array


def may_hold_booleans(body: bytes | memoryview) -> bool:
    """Whether a JSON body has a `true` or `false` anywhere (a byte search: values are scanned only if so)."""
    data = body if isinstance(body, bytes) else bytes(body)
    # one-byte searches first (memchr, several times faster than a word's): numbers never hold a `t` or an `f`
    return (b"t" in data and b"true" in data) or (b"f" in data and b"false" in data)


def only_numbers(body: bytes) -> bool:
    """Whether a JSON body holds only numbers and lists: no string, object key, `null`, `true` or `false` (one-byte
    searches for what those need and a number never holds)."""
    return not any(mark in body for mark in (b'"', b"n", b"t", b"f"))


def float_rows(values: Any) -> np.ndarray | None:
    """Parsed JSON rows of equal length holding only numbers (see `only_numbers`) as a float64 2-D array, in one
    pass and without numpy's look at nested sequences; None for anything else (ragged rows, deeper nesting).
    Rows already parsed into a float64 matrix (`multi_record`'s simdjson path) are that matrix."""
    if type(values) is np.ndarray and values.dtype == np.float64 and values.ndim == 2:
        return values
    if type(values) is not list or not values or type(values[0]) is not list:
        return None
    width = len(values[0])
    try:
        if any(len(row) != width for row in values):
            return None
        flat = np.fromiter(chain.from_iterable(values), np.float64, len(values) * width)
    except (TypeError, ValueError):  # a row that is a number, a value that is a list
        return None
    return flat.reshape(len(values), width)


def _holds_bool(values: Any) -> bool:
    """Whether a JSON value (nested lists) holds `true` or `false`, which numpy would read as 1 and 0."""
    if type(values) is list:
        if values and type(values[0]) is list:
            return any(map(_holds_bool, values))
        return bool in set(map(type, values))
    return type(values) is bool


def _only_strings(values: Any) -> bool:
    """Whether a JSON value (nested lists, not ragged) holds strings only."""
    if type(values) is list:
        if values and type(values[0]) is list:
            return all(map(_only_strings, values))
        return all(type(v) is str for v in values)
    return type(values) is str


def _not_finite(out: np.ndarray, source: np.ndarray) -> str:
    """The first value that is not finite, where it is, and why (error path only)."""
    index = int(np.argmin(np.isfinite(out.ravel())))
    where = f" at {[int(i) for i in np.unravel_index(index, out.shape)]}" if out.ndim else ""
    value = source.ravel()[index] if source.shape == out.shape else out.ravel()[index]
    if math.isfinite(float(value)):
        return f"{float(value):.8g}{where}, beyond {out.dtype}'s range of ±{float(np.finfo(out.dtype).max):.8g}"
    return f"{value}{where}"


def _as_text(array: np.ndarray, port: Port) -> np.ndarray:
    """Strings as an object array of `str` (onnxruntime would store `bytes` as their repr)."""
    out = np.empty(array.shape, dtype=object)
    try:
        out.flat[:] = [v.decode("utf-8") if isinstance(v, bytes) else v for v in array.flat]
    except UnicodeDecodeError:
        raise port.error("ONNX strings are text", "bytes that are not UTF-8") from None
    return out


def _received(array: np.ndarray) -> str:
    """What kind of values an array holds, with an example, for error messages (error path only)."""
    kind = array.dtype.kind
    if kind in "US":
        for value in array.flat:
            try:
                float(value)
            except ValueError:
                return f"strings such as {str(value)!r}"
        return f"numbers written as strings such as {str(array.flat[0])!r}"
    if kind == "O":
        for value in array.flat:
            if value is None:
                return "null values"
            if not isinstance(value, int | float | bool | np.generic):
                return f"{_json_type(value)} values such as {_short(value)}"
        return "integers beyond 64 bits"
    if kind == "b":
        return "booleans"
    if kind in "iu":
        return f"integers such as {array.flat[0]}"
    if kind == "f":
        for value in array.flat:
            if not math.isfinite(value) or value != int(value):
                return f"numbers with fractions such as {value}"
        return "floating-point numbers"
    return f"{array.dtype} values"


def _json_type(value: object) -> str:
    names: dict[type, str] = {dict: "object", list: "array", str: "string"}
    return names.get(type(value), type(value).__name__)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def v2_datatype(array: np.ndarray) -> str:
    """The Open Inference Protocol datatype of an array."""
    try:
        return _V2_BY_NUMPY[array.dtype]
    except KeyError:
        return "BYTES" if array.dtype.kind == "O" else str(array.dtype).upper()


def _default(value: Any) -> Any:
    """orjson's fallback: arrays it cannot write directly, numpy scalars, bytes."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """JSON bytes for protocol documents holding numpy arrays (NaN/inf as null)."""
    return orjson.dumps(value, default=_default, option=JSON_OPTIONS)


def loads(body: bytes | memoryview | str, what: str = "request body") -> Any:
    """Parse JSON, turning a syntax error into a 400 that gives the position."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc).split(":", 1)[0]
        raise RequestError(
            f"malformed JSON in the {what} at line {exc.lineno} column {exc.colno} (char {exc.pos}): {reason}",
            expected="a JSON document", received=_snippet(body, exc.pos), position=exc.pos,
        ) from None


def _snippet(body: bytes | memoryview | str, pos: int) -> str:
    text = body if isinstance(body, str) else bytes(body).decode("utf-8", "replace")  # a binary request's header
    start = max(0, pos - 20)
    return ("..." if start else "") + text[start : pos + 20]
