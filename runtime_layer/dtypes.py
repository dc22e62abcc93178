"""The ONNX tensor element types and their names in numpy, onnxruntime and the Open Inference Protocol."""

from __future__ import annotations

from typing import Any

import numpy as np

from .record import record


@record
class DType:
    """One ONNX element type under all the names the wire protocols use for it."""

    onnx: int  # TensorProto.DataType
    name: str  # mlfn's name, as in numpy where numpy has one
    numpy: np.dtype[Any] | None  # None where numpy has no equivalent
    v2: str  # Open Inference Protocol datatype
    ort: str  # onnxruntime's type string, e.g. "tensor(float)"


def _d(onnx: int, name: str, np_name: str | None, v2: str, ort: str) -> DType:
    return DType(onnx, name, np.dtype(np_name) if np_name else None, v2, f"tensor({ort})")


DTYPES: tuple[DType, ...] = (
    _d(1, "float32", "float32", "FP32", "float"),
    _d(2, "uint8", "uint8", "UINT8", "uint8"),
    _d(3, "int8", "int8", "INT8", "int8"),
    _d(4, "uint16", "uint16", "UINT16", "uint16"),
    _d(5, "int16", "int16", "INT16", "int16"),
    _d(6, "int32", "int32", "INT32", "int32"),
    _d(7, "int64", "int64", "INT64", "int64"),
    _d(8, "string", "object", "BYTES", "string"),
    _d(9, "bool", "bool", "BOOL", "bool"),
    _d(10, "float16", "float16", "FP16", "float16"),
    _d(11, "float64", "float64", "FP64", "double"),
    _d(12, "uint32", "uint32", "UINT32", "uint32"),
    _d(13, "uint64", "uint64", "UINT64", "uint64"),
    _d(16, "bfloat16", None, "BF16", "bfloat16"),
)

BY_ONNX: dict[int, DType] = {d.onnx: d for d in DTYPES}
BY_NAME: dict[str, DType] = {d.name: d for d in DTYPES}
BY_V2: dict[str, DType] = {d.v2: d for d in DTYPES}
BY_ORT: dict[str, DType] = {d.ort: d for d in DTYPES}


def from_onnx(code: int) -> DType:
    """The DType of an ONNX element type code; unknown codes raise ValueError."""
    try:
        return BY_ONNX[code]
    except KeyError:
        raise ValueError(f"unsupported ONNX element type {code}") from None
