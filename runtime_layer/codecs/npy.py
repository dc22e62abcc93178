"""`application/x-npy`: one numpy array in the `.npy` format, as the SageMaker Python SDK's NumpySerializer
sends it for a single-input model, and NumpyDeserializer reads it back for a single-output model.

Pickled object arrays are refused (`allow_pickle=False`): a request body must never run code.
"""

from __future__ import annotations

import io

import numpy as np

from .tensors import Port

CONTENT_TYPE = "application/x-npy"


def decode(body: bytes, port: Port) -> np.ndarray:
    """The array in a `.npy` body, cast for `port` as JSON values would be."""
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise port.error("an application/x-npy body must be one array in numpy's .npy format (no pickles)",
                         f"unreadable data ({str(exc)[:120]})") from None
    if not isinstance(array, np.ndarray):  # pragma: no cover - np.load of .npz gives a mapping
        raise port.error("one array, not an archive", type(array).__name__)
    if array.dtype.kind in "US" and port.dtype.name == "string":
        return array.astype(object)
    return port.decoded(array)


def encode(value: np.ndarray) -> bytes:
    out = io.BytesIO()
    if value.dtype.kind == "O":  # ONNX strings: fixed-width unicode, which loads without pickle
        value = value.astype(str)
    np.save(out, value, allow_pickle=False)
    return out.getvalue()
