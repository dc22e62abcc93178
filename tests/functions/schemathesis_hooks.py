"""Schemathesis hooks for tests/functions/test_openapi.py: a schema-valid binary request is a real one.

OpenAPI can say that a body is `application/octet-stream` or `image/png`, but not what the bytes must hold.
So before a positive test case of such a media type is sent, this makes it the request the document describes:
- a v2 infer body as the binary tensor extension: the operation's own JSON example (every input's name, shape
  and datatype) as the header, its length in `Inference-Header-Content-Length`, each tensor as raw zeros (BYTES:
  the example's strings);
- an `image/png` body (read by the digits hooks) as a picture of a stroke, not schemathesis's 1x1 sample,
  which is blank (the hook refuses a blank picture with 400, as it should).
Negative cases (and every other media type) go out as schemathesis made them. schemathesis cannot write
`text/csv` by itself: the serializer below sends the generated text as it is. The bytes are given to the
transport (`kwargs`), not put in the case: schemathesis would re-check a changed body against the schema, where raw
bytes never validate.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from typing import Any

import schemathesis

OCTET_STREAM = "application/octet-stream"
ITEM_BYTES = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "UINT32": 4, "INT32": 4,
              "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8}


def raw_tensor(tensor: dict[str, Any]) -> bytes:
    """A v2 JSON example tensor's binary form: zeros, or for BYTES its strings, each after its 4-byte length."""
    if tensor["datatype"] == "BYTES":
        return b"".join(struct.pack("<I", len(text.encode())) + text.encode() for text in tensor["data"])
    return bytes(math.prod(tensor["shape"]) * ITEM_BYTES[tensor["datatype"]])


def binary_request(example: dict[str, Any]) -> tuple[bytes, int]:
    """The binary-extension body for a v2 JSON example and its header's length."""
    inputs, tensors = [], []
    for tensor in example["inputs"]:
        raw = raw_tensor(tensor)
        inputs.append({"name": tensor["name"], "shape": tensor["shape"], "datatype": tensor["datatype"],
                       "parameters": {"binary_data_size": len(raw)}})
        tensors.append(raw)
    head = json.dumps({"inputs": inputs}).encode()
    return head + b"".join(tensors), len(head)


def stroke_png(side: int = 16) -> bytes:
    """An 8-bit gray PNG: white paper, a black diagonal stroke."""
    rows = b"".join(b"\x00" + bytes(0 if abs(x - y) <= 1 else 255 for x in range(side)) for y in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@schemathesis.serializer("text/csv")
def csv_body(context: Any, value: Any) -> bytes:
    """A text/csv body as the text schemathesis generated from its schema (a pattern of numeric lines), or,
    for a negative case of another type, that value's JSON spelling."""
    return (value if isinstance(value, str) else json.dumps(value)).encode()


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if case.media_type == "image/png":
        kwargs["data"] = stroke_png()
        return
    if case.media_type != OCTET_STREAM or not case.path.endswith("/infer"):
        return
    operation = case.operation.schema.raw_schema["paths"][case.path][case.method.lower()]
    body, head_length = binary_request(operation["requestBody"]["content"]["application/json"]["example"])
    kwargs["data"] = body
    case.headers = {**(case.headers or {}), "Inference-Header-Content-Length": str(head_length)}
