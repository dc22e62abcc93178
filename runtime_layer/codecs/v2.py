"""Open Inference Protocol v2 (KServe v2 / Triton) over REST: infer requests and responses, metadata.

Request: `{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "data" | parameters.binary_data_size}],
"outputs"?: [{"name", "parameters"?: {"binary_data": bool}}]}`. `data` may be nested or flat (row-major); its
element count must match `shape`. Response: `{"model_name", "model_version", "id"?, "outputs": [{"name",
"datatype", "shape", "data" | parameters.binary_data_size}]}` with flat `data`.

Non-tensor outputs (sequences of maps from skl2onnx's ZipMap, maps) have no v2 datatype: they are sent
as BYTES, one JSON text per sequence element (a map is one element).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import RequestError
from ..record import record
from ..spec import ModelSpec
from . import v2_binary
from .tensors import JSON_CONTENT_TYPE, Port, dumps, may_hold_booleans, v2_datatype

PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ("binary_tensor_data",)


@record(slots=True)
class InferRequest:
    id: str | None
    feeds: dict[str, np.ndarray]
    outputs: list[str] | None  # None: every output
    binary: frozenset[str]  # outputs to send as binary data
    binary_all: bool  # parameters.binary_data_output


def model_metadata(spec: ModelSpec, version: str) -> dict[str, Any]:
    def tensor(t: Any) -> dict[str, Any]:
        if t.dtype is None:
            return {"name": t.name, "datatype": "BYTES", "shape": [-1]}
        shape = [-1] if t.shape is None else [d if isinstance(d, int) else -1 for d in t.shape]
        return {"name": t.name, "datatype": t.dtype.v2, "shape": shape}

    return {
        "name": spec.name,
        "versions": [version],
        "platform": PLATFORM,
        "inputs": [tensor(t) for t in spec.inputs],
        "outputs": [tensor(t) for t in spec.outputs],
    }


def decode(body: bytes, header_length: str | None, ports: Mapping[str, Port], loads: Any) -> InferRequest:
    """An infer request (JSON, or JSON header plus binary tensors) as checked-dtype feeds."""
    head, binary = v2_binary.split(body, header_length)
    return decode_doc(loads(head), binary, ports, may_hold_booleans(head))


def is_request(doc: Any) -> bool:
    """The parsed body looks like a v2 infer request (`inputs` is a list of objects with a name)."""
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    return isinstance(inputs, list) and bool(inputs) and all(isinstance(i, dict) and "name" in i for i in inputs)


def decode_doc(doc: Any, binary: memoryview, ports: Mapping[str, Port], booleans: bool = True) -> InferRequest:
    """An infer request from its parsed JSON header and its binary section (`booleans=False`: the header has
    no `true`/`false`, see `tensors.may_hold_booleans`)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise RequestError('expected a JSON object with "inputs": a list of {name, shape, datatype, data}; '
                           f"got {_keys(doc)}", expected="an inference request", received=_keys(doc))
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for index, item in enumerate(doc["inputs"]):
        if not isinstance(item, dict):
            raise RequestError(f"inputs[{index}] must be an object with name, shape, datatype and data",
                               expected="an object", received=type(item).__name__)
        name = item.get("name")
        port = ports.get(name) if isinstance(name, str) else None
        if port is None or not isinstance(name, str):
            expected = ", ".join(f"{p.name} ({p.described})" for p in ports.values())
            raise RequestError(f"inputs[{index}]: unknown input {name!r}; the model's inputs are {expected}",
                               input=name, expected=expected)
        if name in feeds:
            raise RequestError(f"input {name!r} is given twice", input=name)
        datatype = item.get("datatype")
        if datatype != port.dtype.v2:
            raise port.error(f"datatype must be {port.dtype.v2}", repr(datatype), datatype=datatype)
        shape = item.get("shape")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise port.error('"shape" must be a list of non-negative integers', repr(shape))
        count = math.prod(shape)
        params = item.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise port.error("binary_data_size must fit in the binary data after the JSON header",
                                 f"binary_data_size {size!r} with {len(binary) - offset} bytes left")
            feeds[name] = v2_binary.decode_tensor(binary[offset : offset + size], port, shape, count)
            offset += size
            continue
        if "data" not in item:
            raise port.error('"data" is missing (nor is parameters.binary_data_size given)', "no data")
        data = item["data"]
        if type(data) is not list:  # the protocol's tensor data is an array, flat or nested
            raise port.error('"data" must be a list of values (flat or nested)', f"{type(data).__name__} {data!r:.40}")
        array = port.from_json(data, booleans)
        if array.size != count:
            raise port.error(f"shape {shape} holds {count} elements", f"{array.size} elements in data")
        feeds[name] = array.reshape(shape)
    if offset != len(binary):
        raise RequestError(f"{len(binary) - offset} bytes of binary data follow the inputs' binary_data_size",
                           expected=f"{offset} bytes", received=f"{len(binary)} bytes")
    return InferRequest(_request_id(doc), feeds, *_outputs(doc))


def _request_id(doc: dict[str, Any]) -> str | None:
    rid = doc.get("id")
    if rid is None or isinstance(rid, str):
        return rid
    raise RequestError(f'"id" must be a string, got {type(rid).__name__}', expected="a string",
                       received=type(rid).__name__)


def _outputs(doc: dict[str, Any]) -> tuple[list[str] | None, frozenset[str], bool]:
    params = doc.get("parameters") or {}
    binary_all = bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    requested = doc.get("outputs")
    if requested is None:
        return None, frozenset(), binary_all
    if not isinstance(requested, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                   for o in requested):
        raise RequestError('"outputs" must be a list of objects with a "name"', expected="[{name}]",
                           received=repr(requested)[:80])
    names = [o["name"] for o in requested]

    def wants_binary(output: dict[str, Any]) -> bool:
        params = output.get("parameters")
        flag = params.get("binary_data") if isinstance(params, dict) else None
        return binary_all if flag is None else bool(flag)

    binary = frozenset(o["name"] for o in requested if wants_binary(o))
    return names, binary, binary_all


def encode(
    model_name: str, version: str, request: InferRequest, outputs: Mapping[str, Any], names: Sequence[str]
) -> tuple[bytes, str, dict[str, str]]:
    """Response body, content type and extra headers for the named outputs."""
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    binary_all = request.binary_all and request.outputs is None
    for name in names:
        value = outputs[name]
        if isinstance(value, np.ndarray):
            entry: dict[str, Any] = {"name": name, "datatype": v2_datatype(value), "shape": list(value.shape)}
            tensor = value
        else:  # sequence or map: one JSON text per element
            elements = value if isinstance(value, list) else [value]
            tensor = np.empty(len(elements), dtype=object)
            tensor[:] = [dumps(e).decode("utf-8") for e in elements]
            entry = {"name": name, "datatype": "BYTES", "shape": [len(elements)]}
        if binary_all or name in request.binary:
            raw = v2_binary.encode_tensor(tensor)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = tensor.reshape(-1) if tensor.dtype.kind not in "OUS" else tensor.reshape(-1).tolist()
        entries.append(entry)
    header: dict[str, Any] = {"model_name": model_name, "model_version": version}
    if request.id is not None:
        header["id"] = request.id
    header["outputs"] = entries
    if not chunks:
        return dumps(header), JSON_CONTENT_TYPE, {}
    body, headers = v2_binary.response(header, chunks, dumps)
    return body, v2_binary.OCTET_STREAM, headers


def _keys(doc: Any) -> str:
    if isinstance(doc, dict):
        return "an object with keys " + (", ".join(map(repr, doc)) or "none")
    return type(doc).__name__
