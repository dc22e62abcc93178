"""Protocol-level operations over one model, with no HTTP framework: what every route of the app calls.

`InferenceService.from_dir(model_dir)` loads the spec, the hooks and the model once. Each operation takes
the request body and lower-cased headers and returns a `Reply` (status, body, content type, headers), or
raises `RequestError` (4xx: the caller's fault, message names what and why) or `ModelError` (500).

Which decoding applies where:
- KServe v1 `:predict` and SageMaker `/invocations`: the hooks' `preprocess` first (any content type); when
  it returns None or is absent, JSON (v1 `instances`/`inputs`, a bare list of rows, a bare string for a model
  that takes raw text, or on /invocations a v2 request) or, on /invocations, `text/csv`, `application/x-npy`
  and, for a model that takes raw text, `text/plain`. `postprocess` shapes the answer (v1 wraps it in `predictions`).
- v2 `infer`: the Open Inference Protocol only, JSON or binary tensors; hooks never apply.

Every protocol's rows are counted before the model runs: more than `server.max_rows` in one request is a 413
that asks for fewer rows per request (`too_many_rows`), whichever way the request came in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__, multi_record
from .codecs import csv, npy, text, v1, v2, v2_binary
from .codecs.tensors import JSON_CONTENT_TYPE, Port, dumps, loads, may_hold_booleans, only_numbers
from .errors import ModelError, RequestError
from .hooks import NO_HOOKS, Hooks, load_hooks
from .model import Model
from .record import field, record
from .spec import ModelSpec, load_spec

if TYPE_CHECKING:
    from .batching import Batcher

Observer = Callable[[float, int], None]
"""Called after each model run with (inference seconds, batch rows): a hook for metrics."""

MODEL_VERSION = "1"
SERVER_NAME = "mlfn"
# Content types a JSON protocol reads as JSON: none given, JSON itself, and curl's default for `-d`.
_JSON_TYPES = frozenset({"", "application/json", "text/json", "application/x-www-form-urlencoded"})
_V2_TYPES = _JSON_TYPES | {v2_binary.OCTET_STREAM}
V2_ACCEPTED = ("application/json, or application/octet-stream (the binary tensor extension) with an "
               "Inference-Header-Content-Length header giving the length of the JSON header")
_PASS = object()  # preprocess declined: decode the body ourselves
_ONE_ARRAY: dict[str, Callable[[bytes, Port], np.ndarray]] = {  # bodies that are one input's array
    csv.CONTENT_TYPE: csv.decode, npy.CONTENT_TYPE: npy.decode, text.CONTENT_TYPE: text.decode}
_ANSWER_TYPES = frozenset({"application/json", "text/csv", "application/x-npy"})
FEWER_ROWS = "send fewer rows per request"  # what every refusal of a request too large in rows or answer says


def too_many_rows(rows: int, limit: int) -> RequestError:
    """The 413 for a request holding more rows than `server.max_rows`."""
    return RequestError(f"the request holds {rows} rows; the limit is {limit} rows per request (server.max_rows): "
                        f"{FEWER_ROWS}", 413, limit=limit, received=f"{rows} rows")


@record(slots=True)
class Reply:
    """What the app sends back: status, body bytes, content type and any extra headers."""

    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


def media_type(headers: Mapping[str, str], name: str = "content-type") -> str:
    """`text/csv; charset=utf-8` -> `text/csv`."""
    return headers.get(name, "").split(";", 1)[0].strip().lower()


def _is_json(kind: str) -> bool:
    return kind in _JSON_TYPES or kind.endswith("+json")


def preferred_answer(headers: Mapping[str, str]) -> str:
    """The first of JSON, CSV and .npy the Accept header lists (JSON when it lists none, or `*/*` first)."""
    accept = headers.get("accept", "")
    if not accept:
        return JSON_CONTENT_TYPE
    for item in accept.split(","):
        kind = item.split(";", 1)[0].strip().lower()
        if kind in _ANSWER_TYPES:
            return kind
        if kind in ("*/*", "application/*") or kind.endswith("+json"):
            return JSON_CONTENT_TYPE
    return JSON_CONTENT_TYPE


class InferenceService:
    """One model's protocol operations (KServe v1, Open Inference Protocol v2, SageMaker)."""

    def __init__(
        self, spec: ModelSpec, model: Model, hooks: Hooks = NO_HOOKS, *, observer: Observer | None = None
    ) -> None:
        self.spec = spec
        self.model = model
        self.hooks = hooks
        self.observer = observer
        self.batcher: Batcher | None = None  # set by `batching.install`: model runs then go through it
        self.name = spec.name
        self.max_rows = spec.settings.server.max_rows
        self._ports = model.ports
        self._single = next(iter(model.ports.values())) if len(model.ports) == 1 else None
        self._csv_ok = self._single is not None and csv.accepts(self._single)
        # rows of numbers may reach the model as one float64 matrix (`multi_record.answer(matrix=True)`): what
        # `tensors.float_rows` reads them as, for one floating-point input of a batched model
        self._float_rows = self._single is not None and self._single.numpy is not None \
            and self._single.numpy.kind == "f" and model.batched
        self._text = text.port_of(model.ports)
        self._v2_metadata = v2.model_metadata(spec, MODEL_VERSION)
        accepted = ["application/json", *(["text/csv"] if self._csv_ok else []),
                    *([npy.CONTENT_TYPE] if self._single is not None else []),
                    *([f"{text.CONTENT_TYPE} (one UTF-8 text)"] if self._text is not None else [])]
        if hooks.preprocess_fn is not None:
            accepted.append(f"whatever preprocess in {hooks.file} accepts")
        self._accepted = ", ".join(accepted)

    @classmethod
    def from_dir(
        cls, model_dir: str | Path, *, observer: Observer | None = None, threads: int | None = None
    ) -> InferenceService:
        """Load a model directory: spec, hooks (first: they fail fast), then the session."""
        spec = load_spec(model_dir)
        hooks = load_hooks(spec.hooks_path)
        return cls(spec, Model(spec, threads=threads), hooks, observer=observer)

    def ready(self) -> bool:
        return self.model.session is not None

    # ------------------------------------------------------------------ running

    def _run(self, feeds: Mapping[str, Any], names: Sequence[str] | None = None) -> dict[str, Any]:
        checked = self.model.check(feeds)
        rows = self._rows(checked)
        if rows > self.max_rows:
            raise too_many_rows(rows, self.max_rows)
        start = time.perf_counter()
        batcher = self.batcher
        run = self.model.run_checked if batcher is None else batcher.run
        outputs = run(checked, self.model.all_outputs if names is None else names)
        observer = self.observer
        if observer is not None:
            observer(time.perf_counter() - start, rows)
        return outputs

    def _rows(self, feeds: Mapping[str, np.ndarray]) -> int:
        if not self.model.batched:
            return 1
        first = next(iter(feeds.values()))
        return int(first.shape[0]) if first.ndim else 1

    def _check_name(self, name: str) -> None:
        if name != self.name:
            raise RequestError(f"model {name!r} not found; this endpoint serves {self.name!r}", 404,
                               model=name, expected=self.name)

    # ------------------------------------------------------------------ KServe v1

    def v1_model(self, name: str) -> dict[str, Any]:
        self._check_name(name)
        return {"name": self.name, "ready": self.ready()}

    def v1_predict(self, name: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        self._check_name(name)
        kind = media_type(headers)
        result = self._hooked(body, kind)
        if result is _PASS:
            if not _is_json(kind):
                raise self._unsupported(kind, "application/json")
            result = self._predict_v1(self._loads(body), may_hold_booleans(body))
        if self.hooks.postprocess_fn is not None and isinstance(result, Mapping) and "predictions" in result:
            return self._json(result)  # postprocess already gave a v1 document
        return self._json({"predictions": result})

    def _hooked(self, body: bytes, kind: str) -> Any:
        """The answer through the hooks' preprocess, or `_PASS` when it declines (or there is none)."""
        if self.hooks.preprocess_fn is None:
            return _PASS
        feeds = self.hooks.preprocess(body, kind)
        if feeds is None:
            return _PASS
        return self._finish(feeds, self._run(feeds))

    def _finish(self, feeds: Mapping[str, Any], outputs: dict[str, Any]) -> Any:
        """One stacked run's answer: postprocess's, else v1 predictions."""
        if self.hooks.postprocess_fn is not None:
            return self.hooks.postprocess(outputs)
        return v1.predictions([outputs], v1.Batch([dict(feeds)], v1.rows_of(feeds), True), self.model.output_names)

    def _predict_v1(self, doc: Any, booleans: bool = True, plain: bool = False) -> Any:
        batch = v1.decode(doc, self._ports, self.model.batched, booleans, plain)
        if batch.rows > self.max_rows:  # instances that each run alone are rows as well
            raise too_many_rows(batch.rows, self.max_rows)
        results = [self._run(feeds) for feeds in batch.runs]
        if self.hooks.postprocess_fn is not None:
            post = self.hooks.postprocess
            return post(results[0]) if batch.stacked else [post(r) for r in results]
        return v1.predictions(results, batch, self.model.output_names)

    # ------------------------------------------------------------------ Open Inference Protocol v2

    def v2_server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(v2.EXTENSIONS)}

    def v2_model_metadata(self, name: str) -> dict[str, Any]:
        self._check_name(name)
        return dict(self._v2_metadata)

    def v2_infer(self, name: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        self._check_name(name)
        kind = media_type(headers)
        header_length = headers.get(v2_binary.HEADER)
        if kind not in _V2_TYPES and not kind.endswith("+json"):
            raise self._unsupported(kind, V2_ACCEPTED)
        if kind == v2_binary.OCTET_STREAM and header_length is None:
            raise RequestError(f"application/octet-stream without an Inference-Header-Content-Length header; "
                               f"expected {V2_ACCEPTED}", 415, expected=V2_ACCEPTED, received=kind)
        request = v2.decode(body, header_length, self._ports, loads)
        return self._infer_v2(request)

    def _infer_v2(self, request: v2.InferRequest) -> Reply:
        names = request.outputs
        if names is None:
            names = self.model.all_outputs
        else:
            self.model.check_outputs(names)
        outputs = self._run(request.feeds, names)
        body, content_type, headers = v2.encode(self.name, MODEL_VERSION, request, outputs, names)
        return Reply(200, body, content_type, headers)

    # ------------------------------------------------------------------ SageMaker

    def invocations(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """SageMaker's POST /invocations: hooks, JSON (v1, v2, rows or one text), text/csv, application/x-npy or
        (a model that takes raw text) text/plain in; JSON, or on Accept text/csv or application/x-npy for a
        single-array result, out."""
        kind = media_type(headers)
        if multi_record.applies(kind, headers):  # JSON Lines / CSV rows: one answer line per record
            plain = only_numbers(body)  # rows of numbers only: read in one pass (`tensors.float_rows`)
            booleans = not plain and may_hold_booleans(body)
            lines, extra = multi_record.answer(body, kind, lambda records: self._predict_v1(records, booleans, plain),
                                               self.max_rows, matrix=plain and self._float_rows)
            return Reply(200, lines, multi_record.CONTENT_TYPE, extra)
        wrap = self.hooks.postprocess_fn is None
        result = self._hooked(body, kind)
        if result is not _PASS:
            return self._answer(result, headers, wrap)
        if _is_json(kind):
            doc = self._loads(body)
            booleans = may_hold_booleans(body)
            if v2.is_request(doc):
                return self._infer_v2(v2.decode_doc(doc, memoryview(b""), self._ports, booleans))
            return self._answer(self._predict_v1(doc, booleans), headers, wrap)
        if kind in _ONE_ARRAY:
            port = self._single_input(kind)
            array = _ONE_ARRAY[kind](body, port)
            feeds = {port.name: array}
            return self._answer(self._finish(feeds, self._run(feeds)), headers, wrap)
        raise self._unsupported(kind, self._accepted)

    def _loads(self, body: bytes) -> Any:
        """A JSON body; for a model that takes raw text, the error for one that is not JSON says how to send text
        (curl's `-d` sends form data, which is read as JSON)."""
        if self._text is None:
            return loads(body)
        try:
            return loads(body)
        except RequestError as exc:
            raise RequestError(f"{exc.message}; send raw text as a text/plain body to /invocations, or as a JSON "
                               "string", exc.status, **exc.details) from None

    def _single_input(self, kind: str) -> Port:
        """The input a one-array body (CSV, .npy) feeds; 415 when the model cannot take one."""
        port = self._text if kind == text.CONTENT_TYPE else self._single
        if port is not None and (kind != csv.CONTENT_TYPE or self._csv_ok):
            return port
        need = {csv.CONTENT_TYPE: "one numeric 1-D or 2-D input",
                text.CONTENT_TYPE: "one string input taking one text per row"}.get(kind, "exactly one input")
        described = ", ".join(f"{p.name} ({p.described})" for p in self._ports.values())
        raise RequestError(f"{kind} needs a model with {need}; this model has {described}; send application/json",
                           415, expected="application/json", received=kind)

    def _answer(self, result: Any, headers: Mapping[str, str], wrap: bool) -> Reply:
        """CSV or .npy when Accept asks and the result is one array (CSV: 1-D/2-D), else JSON
        (`{"predictions": ...}` unless postprocess shaped the answer)."""
        answer = preferred_answer(headers)
        if answer == csv.CONTENT_TYPE and csv.can_encode(result):
            return Reply(200, csv.encode(result), csv.CONTENT_TYPE)
        if answer == npy.CONTENT_TYPE and isinstance(result, np.ndarray):
            return Reply(200, npy.encode(result), npy.CONTENT_TYPE)
        return self._json({"predictions": result} if wrap else result)

    # ------------------------------------------------------------------ replies

    def _json(self, document: Any) -> Reply:
        try:
            body = dumps(document)
        except TypeError as exc:
            raise ModelError(f"the result cannot be written as JSON: {exc}") from exc
        return Reply(200, body, JSON_CONTENT_TYPE)

    def _unsupported(self, kind: str, accepted: str) -> RequestError:
        return RequestError(f"unsupported content type {kind or '(none)'!r}; expected {accepted}", 415,
                            expected=accepted, received=kind or "(none)")
