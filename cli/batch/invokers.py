"""The model a batch calls: its deployed endpoint (HTTP, SigV4-signed when IAM guards it) or, for a model
folder, the runtime in this process (`InferenceService`, the code every endpoint runs). Either way a call takes
several records as one multi-record body (JSON Lines, or CSV rows asking for JSON Lines back) on `/invocations`
and returns one outcome per record: its answer line, or why it failed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from mlfn.runtime.multi_record import CONTENT_TYPE as JSONL
from mlfn.runtime.multi_record import FAILED_HEADER


class Outcome(NamedTuple):
    """One record's outcome (a tuple: one is made per record)."""

    ok: bool
    line: bytes  # the answer line (ok) or a JSON error object
    status: int = 200


Send = Callable[[bytes, dict[str, str]], tuple[int, dict[str, str], bytes]]
"""POST a body with headers to the model's /invocations: (status, lower-case headers, body)."""


def call(send: Send, body: bytes, count: int, content_type: str, multi: bool) -> list[Outcome]:
    """One request for `count` records: `body` holds several records of a line format (each ending in a newline),
    or (not `multi`) is one whole object."""
    if multi:
        headers = {"content-type": content_type, "accept": JSONL}
    else:
        headers = {"content-type": content_type, "accept": "application/json"}
    try:
        status, answer_headers, answer = send(body, headers)
    except Exception as exc:  # the call itself failed (connection refused, timeout): every record says so
        return [_failed(f"the call failed: {exc}", 0)] * count
    if status != 200:
        return [_failed(_reason(answer, status), status)] * count
    if not multi:
        return [Outcome(True, _one_line(answer))]
    lines = answer.splitlines()
    if len(lines) != count:
        return [_failed(f"the model answered {len(lines)} lines for {count} records", status)] * count
    failed = {int(i) for i in answer_headers.get(FAILED_HEADER, "").split(",") if i.strip()}
    return [_error_line(line) if i in failed else Outcome(True, line) for i, line in enumerate(lines)]


def _failed(message: str, status: int) -> Outcome:
    return Outcome(False, orjson.dumps({"error": message, "status": status}), status)


def _error_line(line: bytes) -> Outcome:
    try:
        doc = orjson.loads(line)
        return Outcome(False, orjson.dumps({"error": doc.get("error", ""), "status": doc.get("status", 400)}),
                       int(doc.get("status", 400)))
    except (orjson.JSONDecodeError, AttributeError, ValueError):
        return _failed(line.decode("utf-8", "replace"), 400)


def _reason(answer: bytes, status: int) -> str:
    try:
        doc = orjson.loads(answer)
        if isinstance(doc, dict) and "error" in doc:
            return f"HTTP {status}: {doc['error']}"
    except orjson.JSONDecodeError:
        pass
    return f"HTTP {status}: {answer[:200].decode('utf-8', 'replace')}"


def _one_line(answer: bytes) -> bytes:
    """A whole-object answer as one line: compact JSON, or the text as a JSON string."""
    try:
        return orjson.dumps(orjson.loads(answer))
    except orjson.JSONDecodeError:
        return orjson.dumps(answer.decode("utf-8", "replace"))


def in_process(model_dir: str | Path, threads: int | None = 1) -> Send:
    """The runtime over a model folder in this process: `/invocations` exactly as an endpoint serves it."""
    from mlfn.runtime.errors import MlfnError, ModelError, RequestError
    from mlfn.runtime.service import InferenceService

    service = InferenceService.from_dir(model_dir, threads=threads)

    def send(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        try:
            reply = service.invocations(body, headers)
        except RequestError as exc:
            return exc.status, {}, orjson.dumps(exc.to_json())
        except (ModelError, MlfnError) as exc:
            return 500, {}, orjson.dumps({"error": str(exc)})
        return reply.status, dict(reply.headers), reply.body

    return send


def over_http(endpoint: Any, session: Any) -> Send:
    """A deployed endpoint's `/invocations` (SigV4-signed when its auth is AWS_IAM)."""
    from ..client import Payload
    from ..client import send as post

    credentials = session.get_credentials() if endpoint.auth_type == "AWS_IAM" else None

    def send(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        payload = Payload(body, headers["content-type"], "/invocations", "raw")
        answer = post(endpoint.url, payload, auth_type=endpoint.auth_type, target=endpoint.target,
                      region=endpoint.region, credentials=credentials, ca_bundle=endpoint.ca_path,
                      accept=headers.get("accept", "application/json"))
        return answer.status, answer.headers, answer.body

    return send
