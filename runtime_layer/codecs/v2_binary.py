"""The binary tensor data extension of the Open Inference Protocol (as Triton and its clients speak it).

A body starts with the JSON inference header, `Inference-Header-Content-Length` bytes long; the raw
tensors follow in the order of the inputs (or outputs) whose `parameters.binary_data_size` gives their
length. Tensors are little-endian, row-major; BOOL is one byte per element; BYTES is each element as a
4-byte little-endian length followed by its bytes.
"""

from __future__ import annotations

import struct
import sys
from typing import Any

import numpy as np

from ..errors import RequestError
from .tensors import Port

HEADER = "inference-header-content-length"
OCTET_STREAM = "application/octet-stream"
_LITTLE = sys.byteorder == "little"
_LENGTH = struct.Struct("<I")


def split(body: bytes, header_length: str | None) -> tuple[bytes | memoryview, memoryview]:
    """The JSON header and the binary section of a request body."""
    if header_length is None:
        return body, memoryview(b"")
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 <= length <= len(body):
        raise RequestError(f"Inference-Header-Content-Length {header_length!r} is not a length within the "
                           f"{len(body)}-byte body", expected=f"0..{len(body)}", received=header_length)
    view = memoryview(body)
    return view[:length], view[length:]


def decode_tensor(chunk: memoryview, port: Port, shape: list[int], count: int) -> np.ndarray:
    """A raw tensor of `count` elements, checked against its declared size, reshaped to `shape`."""
    if port.dtype.name == "string":
        elements = decode_bytes_elements(chunk, port)
        if len(elements) != count:
            raise port.error(f"shape {shape} holds {count} elements", f"{len(elements)} BYTES elements")
        array = np.empty(count, dtype=object)
        array[:] = elements
        return array.reshape(shape)
    dtype = port.require_numpy()
    wire = dtype.newbyteorder("<")
    if len(chunk) != count * dtype.itemsize:
        raise port.error(f"shape {shape} of {port.dtype.v2} needs {count * dtype.itemsize} bytes",
                         f"binary_data_size {len(chunk)}")
    array = np.frombuffer(chunk, dtype=wire)
    if not _LITTLE:  # pragma: no cover - every AWS CPU is little-endian
        array = array.astype(dtype)
    elif not array.flags.aligned:
        array = array.copy()
    return port.decoded(array.reshape(shape))


def decode_bytes_elements(chunk: memoryview, port: Port) -> list[str]:
    """BYTES elements: 4-byte little-endian length, then UTF-8 text (onnxruntime strings are text)."""
    out: list[str] = []
    pos, end = 0, len(chunk)
    while pos < end:
        if pos + 4 > end:
            raise port.error("BYTES data is truncated", f"{end - pos} stray byte(s) at offset {pos}")
        (size,) = _LENGTH.unpack_from(chunk, pos)
        pos += 4
        if pos + size > end:
            raise port.error("BYTES data is truncated", f"an element of {size} bytes with {end - pos} left")
        try:
            out.append(str(chunk[pos : pos + size], "utf-8"))
        except UnicodeDecodeError:
            raise port.error("ONNX strings are text", f"element {len(out)} that is not UTF-8") from None
        pos += size
    return out


def encode_tensor(value: np.ndarray) -> bytes:
    """The raw little-endian bytes of an array (BYTES: length-prefixed elements)."""
    if value.dtype.kind in "OUS":
        parts: list[bytes] = []
        for element in value.flat:
            data = element.encode("utf-8") if isinstance(element, str) else bytes(element)
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    if not _LITTLE:  # pragma: no cover - every AWS CPU is little-endian
        value = value.astype(value.dtype.newbyteorder("<"))
    return np.ascontiguousarray(value).tobytes()


def response(header: dict[str, Any], chunks: list[bytes], dumps: Any) -> tuple[bytes, dict[str, str]]:
    """The JSON header followed by the binary chunks, and the header naming its length."""
    head = dumps(header)
    return b"".join([head, *chunks]), {"inference-header-content-length": str(len(head))}
