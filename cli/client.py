"""Call a deployed endpoint the way a user's own client would: pick the route from the body, sign when IAM guards it."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .console import CliError

# The AWS service name SigV4 signs for, by the front that serves the URL.
SIGNING_SERVICE = {"lambda": "lambda", "sagemaker": "execute-api", "ecs": "execute-api"}
# Targets that scale to zero behind a front answering 503 while capacity starts (SageMaker: the REST front maps a
# component's zero copies to 503 + Retry-After; ECS: the ALB answers 503 while no task is registered).
WAKING_TARGETS = ("sagemaker", "ecs")
DEFAULT_WAIT_S = 300.0
MAX_PAUSE_S = 15.0


@dataclass(frozen=True)
class Payload:
    """A request body ready to send: its bytes, content type and the route it belongs to."""

    body: bytes
    content_type: str
    path: str
    protocol: str  # "v1", "v2" or "raw"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def text(self) -> str:
        try:
            return json.dumps(json.loads(self.body), indent=2)
        except ValueError:
            return self.body.decode("utf-8", errors="replace")


def read_data(data: str) -> bytes:
    """`--data` is inline text, or `@file` for a file's bytes."""
    if data.startswith("@"):
        path = Path(data[1:])
        if not path.is_file():
            raise CliError(f"--data {data}: no such file {path}")
        return path.read_bytes()
    return data.encode("utf-8")


def file_content_type(data: str) -> str | None:
    """The content type an `@FILE` argument's suffix names (`.json`, `.csv`, `.png`, ...), if any."""
    import mimetypes

    return mimetypes.guess_type(data[1:])[0] if data.startswith("@") else None


def build_payload(raw: bytes, model_name: str, target: str, content_type: str | None = None) -> Payload:
    """Recognise a KServe v1 or Open Inference Protocol v2 body and choose its route.

    SageMaker endpoints only serve `/invocations`, which accepts both bodies; anything that is not JSON
    (an image, CSV) goes to `/invocations` too, where the model's hooks or the CSV codec take it. A body that
    starts like JSON but does not parse, or CSV whose rows differ in length, is refused here, naming where.
    """
    if content_type and "json" not in content_type:
        return Payload(raw, content_type, "/invocations", "raw")
    if content_type or raw.lstrip()[:1] in (b"{", b"["):
        body = parse_json(raw)
    else:
        try:
            body = json.loads(raw)
        except ValueError:
            return Payload(raw, sniff_content_type(raw), "/invocations", "raw")
    protocol = detect_protocol(body)
    if target == "sagemaker":
        path = "/invocations"
    elif protocol == "v2":
        path = f"/v2/models/{model_name}/infer"
    else:
        path = f"/v1/models/{model_name}:predict"
    return Payload(raw, "application/json", path, protocol)


def parse_json(raw: bytes) -> Any:
    """The parsed body, or an error naming the line and column where the JSON breaks (and the text there)."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise CliError(f"--data is not valid JSON: byte {exc.start} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        near = exc.doc[max(0, exc.pos - 20):exc.pos + 20].replace("\n", " ")
        raise CliError(f"--data is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
                       f"(near {near!r})") from None


def sniff_content_type(raw: bytes) -> str:
    """`text/csv` for text whose lines hold comma-separated values (all with as many as the first), else
    `application/octet-stream` (pass --content-type for images and other binary bodies)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    rows = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not rows or "\0" in text or not ("," in rows[0][1] or _is_number(rows[0][1])):
        return "application/octet-stream"
    width = rows[0][1].count(",") + 1
    for number, line in rows:
        if line.count(",") + 1 != width:
            raise CliError(f"--data looks like CSV but line {number} has {line.count(',') + 1} values where line "
                           f"{rows[0][0]} has {width}: {line.strip()[:40]!r}")
    return "text/csv"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def detect_protocol(body: Any) -> str:
    """`v2` for `{"inputs": [{"name": ..., "datatype": ...}]}`, `v1` for `instances`/`inputs` bodies, a bare list of
    rows, or a bare string (one text, for a model that takes raw text)."""
    if isinstance(body, dict):
        inputs = body.get("inputs")
        if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) and "datatype" in inputs[0]:
            return "v2"
        if "instances" in body or "inputs" in body:
            return "v1"
    if isinstance(body, list | str):
        return "v1"
    raise CliError(
        'cannot tell the protocol of --data: expected a KServe v1 body ({"instances": [...]}) '
        'or an Open Inference Protocol v2 body ({"inputs": [{"name", "shape", "datatype", "data"}]})'
    )


def send(
    url: str,
    payload: Payload,
    *,
    auth_type: str,
    target: str,
    region: str,
    credentials: Any = None,
    ca_bundle: str | None = None,
    timeout: float = 60.0,
    accept: str = "application/json",
) -> Answer:
    """POST the payload to `url` + its route, SigV4-signed with botocore's signer when the URL uses IAM auth."""
    import urllib3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    full = url.rstrip("/") + payload.path
    headers = {"Content-Type": payload.content_type, "Accept": accept}
    if auth_type == "AWS_IAM":
        if credentials is None:
            raise CliError("the endpoint uses AWS_IAM auth but no AWS credentials were found to sign with")
        request = AWSRequest(method="POST", url=full, data=payload.body, headers=headers)
        request.headers["Host"] = urlsplit(full).netloc
        SigV4Auth(credentials, SIGNING_SERVICE[target], region).add_auth(request)
        headers = dict(request.headers.items())
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=ca_bundle) if ca_bundle else urllib3.PoolManager()
    try:
        response = pool.request("POST", full, body=payload.body, headers=headers, timeout=timeout, retries=False)
    except urllib3.exceptions.HTTPError as exc:
        raise CliError(f"could not reach {full}: {exc}") from None
    finally:
        pool.clear()  # the body is read already (preload_content): close the connection
    return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.data)


def send_until_awake(url: str, payload: Payload, *, wait_s: float, say: Callable[[str], None],
                     sleep: Callable[[float], None] = time.sleep, **options: Any) -> Answer:
    """`send`, retrying while a scale-to-zero target answers 503 (its model is waking), for at most `wait_s`
    seconds: pauses of 1, 2, 4, ... up to 15 s (never longer than the answer's Retry-After), each announced with
    `say`. Returns the first other answer, or the last 503 once the time is up."""
    deadline = time.monotonic() + wait_s
    pause = 1.0
    while True:
        answer = send(url, payload, **options)
        left = deadline - time.monotonic()
        if answer.status != 503 or options.get("target") not in WAKING_TARGETS or left <= 0:
            return answer
        delay = min(pause, _retry_after(answer) or MAX_PAUSE_S, left)
        say(f"model is scaling from zero, retrying in {math.ceil(delay)}s ...")
        sleep(delay)
        pause = min(pause * 2, MAX_PAUSE_S)


def _retry_after(answer: Answer) -> float | None:
    try:
        return max(0.0, float(answer.headers.get("retry-after", "")))
    except ValueError:
        return None
