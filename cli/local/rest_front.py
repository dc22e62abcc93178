"""The emulator's stand-in for mlfn's API Gateway REST front of a SageMaker endpoint, read from the stack's template.

`front_of_template(template)` picks the POST method whose AWS integration calls `runtime.sagemaker` and keeps what
the data plane needs, in CloudFormation's own shape: the integration's `RequestParameters` and `IntegrationResponses`.
`respond(front, status, headers, body, accept)` then does what API Gateway does with InvokeEndpoint's answer:
- picks the integration response whose `SelectionPattern` (a regex on the status code, for AWS integrations) matches
  the whole status, else the one without a pattern; none at all is API Gateway's 500 "Internal server error";
- converts the body (`ContentHandling` CONVERT_TO_TEXT: base64 text), runs the response template chosen by the
  request's Accept type (else `application/json`), then maps the `ResponseParameters` (static `'values'` and
  `integration.response.header.*`); the method response carries only those headers.

Templates are Velocity (VTL) in API Gateway; the emulator evaluates only the subset mlfn's front uses (set a variable
from `$input.body` or `$util.base64Decode($input.body)`, `#if($var.contains("..."))`, `#set` of
`$context.responseOverride.status` and `.header.NAME`, `#end`, and a line that is one `$var`). Anything else is
refused when the front is read, so the emulator never pretends to run a template it does not understand.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

_SET_VAR = re.compile(r'^#set\(\$(\w+) = (\$input\.body|\$util\.base64Decode\(\$input\.body\))\)$')
_IF_CONTAINS = re.compile(r'^#if\(\$(\w+)\.contains\("([^"\\]*)"\)\)$')
_SET_STATUS = re.compile(r'^#set\(\$context\.responseOverride\.status = (\d{3})\)$')
_SET_HEADER = re.compile(r'^#set\(\$context\.responseOverride\.header\.([A-Za-z0-9-]+) = "([^"\\]*)"\)$')
_OUTPUT = re.compile(r'^\$(\w+)$')


class UnsupportedFront(ValueError):
    """The template's front uses something the emulator does not evaluate."""


@dataclass
class Rendered:
    body: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


def check_template(text: str) -> None:
    """Raise UnsupportedFront unless every line is in the subset `render` evaluates."""
    depth = 0
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        if line == "#end":
            depth -= 1
        elif _IF_CONTAINS.match(line):
            depth += 1
        elif not any(p.match(line) for p in (_SET_VAR, _SET_STATUS, _SET_HEADER, _OUTPUT)):
            raise UnsupportedFront(f"the emulator does not evaluate this mapping-template line: {line!r}")
        if depth < 0:
            raise UnsupportedFront("the mapping template has an #end without #if")
    if depth:
        raise UnsupportedFront("the mapping template has an #if without #end")


def render(text: str, input_body: str) -> Rendered:
    """Evaluate a template of the subset `check_template` accepts with `$input.body` = `input_body`."""
    variables: dict[str, str] = {}
    active = [True]
    out: list[str] = []
    status: int | None = None
    headers: dict[str, str] = {}
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        if line == "#end":
            active.pop()
            continue
        if m := _IF_CONTAINS.match(line):
            active.append(active[-1] and m.group(2) in variables.get(m.group(1), ""))
            continue
        if not active[-1]:
            continue
        if m := _SET_VAR.match(line):
            decode = m.group(2).startswith("$util")
            variables[m.group(1)] = (base64.b64decode(input_body).decode("utf-8", "replace") if decode
                                     else input_body)
        elif m := _SET_STATUS.match(line):
            status = int(m.group(1))
        elif m := _SET_HEADER.match(line):
            headers[m.group(1)] = m.group(2)
        elif m := _OUTPUT.match(line):
            out.append(variables.get(m.group(1), f"${m.group(1)}"))  # VTL prints an unset reference as written
    return Rendered("\n".join(out), status, headers)


def front_of_template(template: dict[str, Any]) -> dict[str, Any]:
    """The SageMaker integration of a stack's REST API (`{}` when it has none), checked for what `respond` runs."""
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::ApiGateway::Method":
            continue
        props = resource.get("Properties") or {}
        integration = props.get("Integration") or {}
        if props.get("HttpMethod") != "POST" or "runtime.sagemaker" not in repr(integration.get("Uri")):
            continue
        front = {"RequestParameters": dict(integration.get("RequestParameters") or {}),
                 "IntegrationResponses": list(integration.get("IntegrationResponses") or [])}
        for response in front["IntegrationResponses"]:
            for text in (response.get("ResponseTemplates") or {}).values():
                check_template(text)
        return {**front, **_api_name_and_stage(template)}
    return {}


def _api_name_and_stage(template: dict[str, Any]) -> dict[str, str]:
    """The REST API's `Name` and its stage's name: the `ApiName` and `Stage` dimensions of its metrics."""
    out: dict[str, str] = {}
    for resource in (template.get("Resources") or {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::ApiGateway::RestApi" and isinstance(props.get("Name"), str):
            out["ApiName"] = props["Name"]
        elif resource.get("Type") == "AWS::ApiGateway::Stage" and isinstance(props.get("StageName"), str):
            out["Stage"] = props["StageName"]
    return out


def metric_dimensions(front: dict[str, Any]) -> dict[str, str]:
    """The front's `ApiName` and `Stage` (as `front_of_template` read them), for its metrics."""
    return {k: front[k] for k in ("ApiName", "Stage") if isinstance(front.get(k), str)}


def static_request_headers(front: dict[str, Any]) -> dict[str, str]:
    """The integration request headers the front sets to fixed values (e.g. the inference component)."""
    prefix = "integration.request.header."
    return {k[len(prefix):]: v[1:-1] for k, v in front.get("RequestParameters", {}).items()
            if k.startswith(prefix) and isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == "'"}


def _select(front: dict[str, Any], status: int) -> dict[str, Any] | None:
    responses = front.get("IntegrationResponses", [])
    for response in responses:
        pattern = response.get("SelectionPattern")
        if pattern and re.fullmatch(pattern, str(status)):
            return dict(response)
    return next((dict(r) for r in responses if not r.get("SelectionPattern")), None)


def respond(front: dict[str, Any], status: int, headers: list[tuple[str, str]], body: bytes,
            accept: str = "") -> tuple[int, list[tuple[str, str]], bytes]:
    """The method response API Gateway makes of the integration's answer (`status`, `headers`, `body`)."""
    response = _select(front, status)
    if response is None:
        return 500, [("content-type", "application/json")], b'{"message": "Internal server error"}'
    upstream = {k.lower(): v for k, v in headers}
    payload = body
    if response.get("ContentHandling") == "CONVERT_TO_TEXT":
        payload = base64.b64encode(body)
    templates = response.get("ResponseTemplates") or {}
    wanted = accept.split(",")[0].split(";")[0].strip().lower()
    template = templates.get(wanted) or templates.get("application/json")
    rendered = render(template, payload.decode("ascii", "replace")) if template else None
    out_status = int(response["StatusCode"])
    out: dict[str, str] = {}
    for key, source in (response.get("ResponseParameters") or {}).items():
        name = key.removeprefix("method.response.header.")
        if source.startswith("'") and source.endswith("'"):
            out[name] = source[1:-1]
        elif source.startswith("integration.response.header."):
            value = upstream.get(source.removeprefix("integration.response.header.").lower())
            if value is not None:
                out[name] = value
    if rendered is not None:
        payload = rendered.body.encode("utf-8")
        out_status = rendered.status or out_status
        out.update(rendered.headers)
    return out_status, [(k.lower(), v) for k, v in out.items()], payload
