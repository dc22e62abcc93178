"""The OpenAPI description of what `ServingCore` serves, built from the loaded model's own signature.

Request schemas say what the server takes and no more: `{}` is no request, an instance has the input's
columns, a v2 tensor names a real input with its datatype and a shape whose data fits it, the CSV example has
as many columns as the input. Path parameters list the one model name (and versions) served. Each operation
lists every status the core answers with (404 unknown model or version, 405 other methods, 413, 415, 503
while loading, ...) and the content types it answers them in (`/ping` and `/metrics` are text/plain).

`mlfn.runtime.app` hands these operations to FastAPI, which writes the document (`/openapi.json`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .codecs import csv, npy, text, v2_binary
from .codecs.tensors import JSON_CONTENT_TYPE, Port
from .errors import RequestError
from .routing import ROUTES
from .spec import TensorSpec

if TYPE_CHECKING:
    from .service import InferenceService

Schema = dict[str, Any]
JSON, OCTET_STREAM, NPY = JSON_CONTENT_TYPE, v2_binary.OCTET_STREAM, npy.CONTENT_TYPE
BATCH_SIZES = (1, 2, 3)  # the v2 shapes a dynamic batch dimension is documented with (any size works)
ANY_OBJECT: Schema = {"type": "object"}
ANY_JSON: Schema = {}
ERROR_SCHEMA: Schema = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
ONE_TEXT: Schema = {"type": "string", "pattern": r"\S", "description": "one text (not only whitespace)"}


# ---------------------------------------------------------------- tensors as JSON


def element(t: TensorSpec) -> Schema:
    """One value of an input, as the JSON codec takes it: what it does with a boolean, or with a number past the
    input's float range, is asked of the codec itself, so the document cannot drift from it."""
    dtype = t.dtype
    if dtype is None or dtype.v2 == "BYTES":
        return {"type": "string"}
    if dtype.v2 == "BOOL":
        return {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}], "description": "true/false, or 0/1"}
    port, numeric = Port.of(t), dtype.numpy
    kind = "integer" if numeric is not None and numeric.kind in "iu" else "number"
    schema: Schema = {"type": [kind, "boolean"] if _takes(port, [True]) else kind}
    if numeric is not None and numeric.kind in "iu":
        info = np.iinfo(numeric)
        schema.update(minimum=int(info.min), maximum=int(info.max))
    elif numeric is not None and numeric.kind == "f" and numeric.itemsize < 8:  # float64's range is JSON's
        largest = float(np.finfo(numeric).max)
        if not _takes(port, [largest * 2]):
            # A JSON number is a double; the codec refuses it when it rounds to infinity in the input's dtype, i.e.
            # from the largest value plus half a step (a tie rounds away from the odd largest mantissa) on.
            step = largest - float(np.nextafter(numeric.type(largest), numeric.type(0)))
            schema.update(exclusiveMinimum=-(largest + step / 2), exclusiveMaximum=largest + step / 2)
    return schema


def _takes(port: Port, values: list[Any]) -> bool:
    """Whether the JSON codec feeds these values to the input."""
    try:
        with np.errstate(over="ignore"):
            port.from_json(values)
    except RequestError:
        return False
    return True


def nested(dims: Sequence[int | str | None], item: Schema) -> Schema:
    """Nested lists in `dims` (a fixed size exactly; a dynamic dimension at least 1) of `item`."""
    for d in reversed(dims):
        size: Schema = {"minItems": d, "maxItems": d} if isinstance(d, int) else {"minItems": 1}
        item = {"type": "array", "items": item, **size}
    return item


def _dims(t: TensorSpec) -> tuple[int | str | None, ...] | None:
    return None if t.shape is None else tuple(t.shape)


def instance(t: TensorSpec, batched: bool) -> Schema:
    """One v1 instance of an input: its shape without the batch dimension (the whole shape for a model whose
    inputs are not all batched: each instance runs on its own)."""
    dims = _dims(t)
    if dims is None:
        return {}
    return nested(dims[1:] if batched else dims, element(t))


def columns(t: TensorSpec) -> Schema:
    """A whole input tensor as nested lists."""
    dims = _dims(t)
    return {} if dims is None else nested(dims, element(t))


def _keyed(inputs: Sequence[TensorSpec], value: Any) -> Schema:
    return {"type": "object", "required": [t.name for t in inputs], "additionalProperties": False,
            "properties": {t.name: value(t) for t in inputs}}


def v1_request(inputs: Sequence[TensorSpec], batched: bool) -> Schema:
    """KServe v1: `instances` (rows), `inputs` (columns), or a bare list of rows."""
    keyed_rows = {"type": "array", "minItems": 1, "items": _keyed(inputs, lambda t: instance(t, batched))}
    row_forms = [keyed_rows]
    column_forms = [_keyed(inputs, columns)]
    if len(inputs) == 1:
        row_forms.insert(0, {"type": "array", "minItems": 1, "items": instance(inputs[0], batched)})
        column_forms.insert(0, columns(inputs[0]))
    rows = {"anyOf": row_forms}
    forms = [
        {"type": "object", "required": ["instances"], "properties": {"instances": rows}},
        {"type": "object", "required": ["inputs"], "not": {"required": ["instances"]},
         "properties": {"inputs": {"anyOf": column_forms}}},
        rows,
    ]
    takes_text = len(inputs) == 1 and text.accepts(Port.of(inputs[0]))
    return {
        "description": '`{"instances": [row, ...]}` (a row per example; rows may be objects keyed by input name), '
                       '`{"inputs": columns}` (the whole tensors, or an object keyed by input name), a bare '
                       "list of rows" + (", or a bare string: one text" if takes_text else ""),
        "anyOf": [*forms, ONE_TEXT] if takes_text else forms,
    }


def _shapes(t: TensorSpec) -> list[list[int]]:
    """The shapes a v2 tensor is documented with: each batch size of BATCH_SIZES, other dynamic dimensions 1."""
    dims = _dims(t) or (None,)
    rest = [d if isinstance(d, int) else 1 for d in dims[1:]]
    if isinstance(dims[0], int):
        return [[dims[0], *rest]]
    return [[b, *rest] for b in BATCH_SIZES]


def v2_tensor(t: TensorSpec) -> Schema:
    """A v2 input tensor: the input's name and datatype, and data (flat or nested) that fills its shape."""
    datatype = t.dtype.v2 if t.dtype else "FP32"
    forms = []
    for shape in _shapes(t):
        count = math.prod(shape)
        flat = {"type": "array", "items": element(t), "minItems": count, "maxItems": count}
        forms.append({
            "type": "object", "required": ["name", "shape", "datatype", "data"],
            "properties": {"name": {"const": t.name}, "datatype": {"const": datatype}, "shape": {"const": shape},
                           "data": {"anyOf": [flat, nested(shape, element(t))]} if len(shape) > 1 else flat},
        })
    return forms[0] if len(forms) == 1 else {"anyOf": forms}


def v2_request(inputs: Sequence[TensorSpec], outputs: Sequence[str]) -> Schema:
    """An Open Inference Protocol v2 infer request for these inputs (any order) and outputs."""
    requested = {"type": "object", "required": ["name"], "properties": {
        "name": {"enum": list(outputs)},
        "parameters": {"description": "`{\"binary_data\": true}` asks for this output in binary"}}}
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": ["string", "null"], "description": "echoed in the response"},
            "parameters": {"description": "`{\"binary_data_output\": true}` asks for binary outputs"},
            "inputs": {"type": "array", "minItems": len(inputs), "maxItems": len(inputs),
                       "items": v2_tensor(inputs[0]) if len(inputs) == 1 else {"anyOf": [v2_tensor(t) for t in inputs]},
                       "description": "every input of the model, once each"},
            "outputs": {"anyOf": [{"type": "array", "minItems": 1, "items": requested}, {"type": "null"}],
                        "description": "the outputs to return (absent or null: all)"},
        },
    }


def _zero(t: TensorSpec) -> Any:
    return {"BYTES": "text", "BOOL": False}.get(t.dtype.v2 if t.dtype else "", 0)


def v1_example(inputs: Sequence[TensorSpec], batched: bool) -> Any:
    """A v1 request: one instance of zeros (dynamic dimensions as 1)."""
    def zeros(t: TensorSpec) -> Any:
        value = _zero(t)
        dims = _dims(t) or ()
        for d in reversed(dims[1:] if batched else dims):
            value = [value] * (d if isinstance(d, int) else 1)
        return value

    if len(inputs) == 1:
        return {"instances": [zeros(inputs[0])]}
    return {"instances": [{t.name: zeros(t) for t in inputs}]}


def v2_example(inputs: Sequence[TensorSpec]) -> Any:
    return {"inputs": [{"name": t.name, "shape": (shape := _shapes(t)[0]),
                        "datatype": t.dtype.v2 if t.dtype else "FP32", "data": [_zero(t)] * math.prod(shape)}
                       for t in inputs]}


def csv_columns(t: TensorSpec) -> int | None:
    """How many values a CSV line holds for this input (None: any number)."""
    dims = _dims(t)
    if dims is not None and len(dims) == 1:
        return 1
    last = dims[-1] if dims else None
    return last if isinstance(last, int) else None


def csv_body(t: TensorSpec) -> tuple[Schema, str]:
    """The schema and an example of a CSV body for the input: lines of numbers, no header."""
    number = r"-?[0-9]{1,9}(\.[0-9]{1,9})?"
    n = csv_columns(t)
    line = f"{number}(,{number}){{{n - 1}}}" if n else f"{number}(,{number})*"
    example = ",".join(["0"] * (n or 1)) + "\n"
    return {"type": "string", "pattern": f"^({line}\\r?\\n)*{line}(\\r?\\n)?$",
            "description": f"lines of {n or 'the same number of'} comma-separated numbers, no header"}, example


def hook_media_types(service: InferenceService) -> tuple[str, ...]:
    """The media types the hooks' preprocess reads (its module's CONTENT_TYPES; octet-stream if it names none)."""
    preprocess = service.hooks.preprocess_fn
    if preprocess is None:
        return ()
    declared = getattr(inspect.getmodule(preprocess), "CONTENT_TYPES", None)
    return tuple(declared) if declared else (OCTET_STREAM,)


# ---------------------------------------------------------------- responses


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _error(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": _ref("schemas", "Error")}}}


ERRORS = {  # status -> (component name, response): shared by every operation that answers it
    "400": ("BadRequest", _error("Bad input: `{\"error\": ...}` naming what was wrong and what was expected")),
    "404": ("NotFound", _error("No such model, version or route here: `{\"error\": ...}`")),
    "405": ("MethodNotAllowed", _error("Method not allowed on this path: `{\"error\": ..., \"allowed\": [...]}` "
                                       "and an Allow header")),
    "413": ("TooLarge", _error("Body larger than server.max_body_bytes")),
    "415": ("UnsupportedMediaType", _error("Unsupported content type or encoding: `{\"error\": ...}` naming the "
                                           "accepted ones")),
    "500": ("ModelError", _error("The model failed: `{\"error\": ..., \"request_id\": ...}`")),
    "503": ("NotReady", _error("The model is still loading: `{\"error\": ...}` with Retry-After")),
}


def _answers(ok: Schema, *statuses: str) -> dict[str, Any]:
    return {"200": ok, **{status: _ref("responses", ERRORS[status][0]) for status in statuses}}


def ok(*media_types: str, description: str = "OK") -> Schema:
    return {"description": description, "content": {m: {"schema": ANY_JSON if m == JSON else
                                                         {"type": "string", "format": "binary"}} for m in media_types}}


def _responses() -> dict[str, dict[str, Any]]:
    """The responses of each kind of operation."""
    read, call = ("404", "405", "503"), ("400", "404", "405", "413", "415", "500", "503")
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "index": _answers(ok(JSON), *read),
        "read": _answers(ok(JSON), *read),
        "ping": _answers({"description": "Ready: an empty body",
                          "content": {"text/plain": {"schema": {"type": "string", "maxLength": 0}}}}, "405", "503"),
        "metrics": {**_answers({"description": "Prometheus text exposition format", "content": text}, "405"),
                    "404": _error("No Prometheus metrics here (on Lambda metrics go to CloudWatch as EMF)")},
        "v1": _answers(ok(JSON, description="`{\"predictions\": [...]}`"), *call),
        "v2": _answers(ok(JSON, OCTET_STREAM, description="outputs as JSON, or the binary tensor extension"), *call),
        "invocations": _answers(ok(JSON, csv.CONTENT_TYPE, NPY, description="JSON, or CSV or .npy on Accept"), *call),
    }


# ---------------------------------------------------------------- operations

def _body(content: dict[str, Any], description: str) -> Schema:
    return {"required": True, "description": description, "content": content}


def _request_bodies(service: InferenceService | None) -> dict[str, Schema]:
    """The request body of each inference kind, from the loaded model (or loose ones while it loads)."""
    if service is None:
        return {kind: _body({JSON: {"schema": ANY_OBJECT}}, "the model is still loading") for kind in
                ("v1", "v2", "invocations")}
    inputs = service.spec.inputs
    batched = service.model.batched
    v1 = {"schema": _ref("schemas", "V1Request"), "example": v1_example(inputs, batched)}
    v2 = {"schema": _ref("schemas", "V2Request"), "example": v2_example(inputs)}
    binary = {"schema": {"type": "string", "format": "binary"},
              "description": "the binary tensor extension: the JSON inference header, whose length the "
                             "Inference-Header-Content-Length header gives (required), then the raw tensors, each "
                             "`parameters.binary_data_size` bytes long (little-endian, row-major)"}
    hooked = {m: {"schema": {"type": "string", "format": "binary"},
                  "description": f"read by preprocess in {service.hooks.file}"} for m in hook_media_types(service)}
    sagemaker: dict[str, Any] = {JSON: {"schema": {"anyOf": [v1["schema"], v2["schema"]]}, "example": v1["example"]}}
    if len(inputs) == 1:
        if csv.accepts(service.model.ports[inputs[0].name]):
            schema, example = csv_body(inputs[0])
            sagemaker[csv.CONTENT_TYPE] = {"schema": schema, "example": example}
        sagemaker[NPY] = {"schema": {"type": "string", "format": "binary"},
                          "description": "a NumPy .npy file holding the input"}
        if text.port_of(service.model.ports) is not None:
            sagemaker[text.CONTENT_TYPE] = {"schema": ONE_TEXT, "example": _zero(inputs[0]),
                                            "description": "one UTF-8 text: one row"}
    return {
        "v1": _body({JSON: v1, **hooked}, "KServe v1 request"),
        "v2": _body({JSON: v2, OCTET_STREAM: binary}, "Open Inference Protocol v2 request"),
        "invocations": _body({**sagemaker, **hooked}, "SageMaker invocation: a v1 or v2 JSON body, CSV rows or an "
                             ".npy array for a one-input model, one text (text/plain) for a model that takes raw "
                             "text, or what the model directory's hooks read"),
    }


def describe(document: Schema, service: InferenceService | None) -> Schema:
    """Fill FastAPI's document with each operation's request body, parameters and responses."""
    bodies = _request_bodies(service)
    kinds = {op.operation_id: op.kind for op in ROUTES}
    answers = _responses()
    names = [service.spec.name] if service is not None else None
    versions = service.v2_model_metadata(service.spec.name).get("versions") if service is not None else None
    for methods in document.get("paths", {}).values():
        for operation in methods.values():
            kind = kinds[operation["operationId"]]
            operation["responses"] = answers[kind]
            if kind in bodies:
                operation["requestBody"] = bodies[kind]
            for parameter in operation.get("parameters", []):
                allowed = names if parameter["name"] == "name" else versions if parameter["name"] == "version" else None
                if allowed:
                    parameter["schema"] = {"type": "string", "enum": [str(v) for v in allowed]}
    # FastAPI's own components describe its 422, which the core never answers: replaced whole
    schemas: dict[str, Schema] = {"Error": ERROR_SCHEMA}
    if service is not None:
        schemas["V1Request"] = v1_request(service.spec.inputs, service.model.batched)
        schemas["V2Request"] = v2_request(service.spec.inputs, service.model.all_outputs)
    document["components"] = {"schemas": schemas,
                              "responses": {name: response for name, response in ERRORS.values()}}
    return document
