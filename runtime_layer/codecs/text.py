"""Raw text for a model that tokenizes in its graph: one string input whose every dimension may be 1.

A `text/plain` body (on `/invocations`), or a JSON body that is a bare string (on v1 `:predict` and
`/invocations`), is one text: one row, shaped `[1]` for a `string[?]` input or `[1, 1]` for `string[?, 1]`.
Several texts go as a list of strings (`{"instances": ["...", "..."]}`) or a v2 BYTES tensor, which the
ordinary tensor codecs read. A text must be UTF-8 and hold more than whitespace.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import RequestError
from .tensors import Port

CONTENT_TYPE = "text/plain"


def accepts(port: Port) -> bool:
    """Whether one text can feed this input: a string tensor of unknown shape or whose dimensions may all be 1."""
    return port.dtype.name == "string" and (port.shape is None or all(d == 1 for _, d in port.fixed))


def port_of(ports: Mapping[str, Port]) -> Port | None:
    """The one input of a model that takes raw text, or None."""
    if len(ports) != 1:
        return None
    port = next(iter(ports.values()))
    return port if accepts(port) else None


def decode(body: bytes, port: Port) -> np.ndarray:
    """A `text/plain` body as one row for `port`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"text/plain body is not UTF-8 (byte {exc.start})", expected="UTF-8 text",
                           received="bytes that are not UTF-8", input=port.name) from None
    return one(text, port)


def one(text: str, port: Port) -> np.ndarray:
    """One text as a one-row array for `port` (every dimension 1)."""
    if not text.strip():
        raise port.error("the text is empty", "no text" if not text else "only whitespace")
    array = np.empty((1,) * (1 if port.rank is None else port.rank), dtype=object)
    array.flat[0] = text
    return array
