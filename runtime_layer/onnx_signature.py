"""Read an ONNX model's signature straight from its protobuf bytes.

Reading inputs and outputs this way needs neither the `onnx` package nor an onnxruntime session, so
validating, building and synthesizing a large model costs milliseconds and no model memory. Only the
fields of `ModelProto` that describe the graph's interface are decoded; weights are skipped unread.
"""

from __future__ import annotations

import contextlib
import mmap
from pathlib import Path

from .record import record

Dim = int | str | None
"""One dimension: a fixed size, a symbolic name (dynamic), or None (unknown)."""


class OnnxFormatError(ValueError):
    """The bytes are not a well-formed ONNX model."""


@record
class OnnxType:
    """An ONNX value type: a tensor, or a sequence/map/optional of other types."""

    kind: str  # "tensor" | "sparse_tensor" | "sequence" | "map" | "optional" | "unknown"
    elem_type: int = 0  # tensors: TensorProto.DataType; maps: the key's DataType
    shape: tuple[Dim, ...] | None = None  # None: rank unknown
    inner: OnnxType | None = None  # sequence/optional element, map value


@record
class OnnxValue:
    name: str
    type: OnnxType


@record
class OnnxSignature:
    inputs: tuple[OnnxValue, ...]
    outputs: tuple[OnnxValue, ...]
    ir_version: int
    opsets: dict[str, int]
    producer: str
    metadata: dict[str, str]


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise OnnxFormatError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxFormatError("varint too long")


def _fields(buf: memoryview) -> list[tuple[int, int | memoryview]]:
    """Split one message into (field number, value) pairs; length-delimited values stay views."""
    out: list[tuple[int, int | memoryview]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise OnnxFormatError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise OnnxFormatError("length-delimited field runs past the end of its message")
            out.append((number, buf[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise OnnxFormatError(f"unsupported wire type {wire}")
        if pos > end:
            raise OnnxFormatError("field runs past the end of its message")
    return out


def _text(value: int | memoryview) -> str:
    if isinstance(value, int):
        raise OnnxFormatError("expected a string field")
    return bytes(value).decode("utf-8", errors="replace")


def _sub(value: int | memoryview) -> memoryview:
    if isinstance(value, int):
        raise OnnxFormatError("expected a message field")
    return value


def _shape(buf: memoryview) -> tuple[Dim, ...]:
    dims: list[Dim] = []
    for number, value in _fields(buf):
        if number != 1:
            continue
        dim: Dim = None
        for dnum, dval in _fields(_sub(value)):
            if dnum == 1 and isinstance(dval, int):
                dim = dval
            elif dnum == 2:
                dim = _text(dval) or None
        dims.append(dim)
    return tuple(dims)


def _tensor_type(buf: memoryview, kind: str) -> OnnxType:
    elem, shape = 0, None
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, int):
            elem = value
        elif number == 2:
            shape = _shape(_sub(value))
    return OnnxType(kind, elem_type=elem, shape=shape)


def _type(buf: memoryview) -> OnnxType:
    for number, value in _fields(buf):
        if number == 1:
            return _tensor_type(_sub(value), "tensor")
        if number == 8:
            return _tensor_type(_sub(value), "sparse_tensor")
        if number in (4, 9):  # sequence_type, optional_type: field 1 is the element TypeProto
            inner = next((_type(_sub(v)) for n, v in _fields(_sub(value)) if n == 1), None)
            return OnnxType("sequence" if number == 4 else "optional", inner=inner)
        if number == 5:  # map_type: 1 key_type, 2 value_type
            key, inner = 0, None
            for n, v in _fields(_sub(value)):
                if n == 1 and isinstance(v, int):
                    key = v
                elif n == 2:
                    inner = _type(_sub(v))
            return OnnxType("map", elem_type=key, inner=inner)
    return OnnxType("unknown")


def _value_info(buf: memoryview) -> OnnxValue:
    name, typ = "", OnnxType("unknown")
    for number, value in _fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:
            typ = _type(_sub(value))
    return OnnxValue(name, typ)


def read_signature_bytes(data: bytes | memoryview | mmap.mmap) -> OnnxSignature:
    """Decode the interface of a serialized `ModelProto`."""
    top = memoryview(data)  # type: ignore[arg-type]
    graph: memoryview | None = None
    ir_version, producer = 0, ""
    opsets: dict[str, int] = {}
    metadata: dict[str, str] = {}
    for number, value in _fields(top):
        if number == 1 and isinstance(value, int):
            ir_version = value
        elif number == 2:
            producer = _text(value)
        elif number == 7:
            graph = _sub(value)
        elif number == 8:
            domain, version = "", 0
            for n, v in _fields(_sub(value)):
                if n == 1:
                    domain = _text(v)
                elif n == 2 and isinstance(v, int):
                    version = v
            opsets[domain or "ai.onnx"] = version
        elif number == 14:
            entry = dict((n, _text(v)) for n, v in _fields(_sub(value)) if n in (1, 2))
            metadata[entry.get(1, "")] = entry.get(2, "")
    if graph is None or ir_version == 0:
        raise OnnxFormatError("no graph or IR version: not an ONNX ModelProto")
    inputs: list[OnnxValue] = []
    outputs: list[OnnxValue] = []
    initializers: set[str] = set()
    for number, value in _fields(graph):
        if number == 11:
            inputs.append(_value_info(_sub(value)))
        elif number == 12:
            outputs.append(_value_info(_sub(value)))
        elif number == 5:  # initializer TensorProto: name is field 8
            for n, v in _fields(_sub(value)):
                if n == 8:
                    initializers.add(_text(v))
    # Before IR 4, initializers were also listed as graph inputs; they are not the caller's to feed.
    feeds = tuple(v for v in inputs if v.name not in initializers)
    if not outputs:
        raise OnnxFormatError("the graph declares no outputs")
    return OnnxSignature(feeds, tuple(outputs), ir_version, opsets, producer, metadata)


def read_signature(path: Path) -> OnnxSignature:
    """Decode the interface of the ONNX model file at `path` (memory-mapped, weights not read)."""
    with path.open("rb") as handle:
        if path.stat().st_size == 0:
            raise OnnxFormatError("the file is empty")
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return read_signature_bytes(mapped)
    except (OnnxFormatError, IndexError) as exc:
        message = str(exc) or type(exc).__name__
    finally:
        # Views still held by a traceback keep the map open; it closes when they are freed.
        with contextlib.suppress(BufferError):
            mapped.close()
    raise OnnxFormatError(message)
