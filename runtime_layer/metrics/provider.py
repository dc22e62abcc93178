"""The interface every metrics backend implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class MetricsProvider(Protocol):
    """What the serving layer reports. Every method is cheap and never raises into a request."""

    def request(self, route: str, status: int, seconds: float) -> None:
        """One HTTP request finished: its route template (never the raw path), status and duration."""

    def inference(self, seconds: float, rows: int) -> None:
        """One model run finished: its duration and the rows in its batch."""

    def batch(self, requests: int) -> None:
        """One batched model run served this many requests (only when dynamic batching is on)."""

    def cold_start(self, seconds: float) -> None:
        """The first request of a fresh sandbox; `seconds` is how long the init phase took."""

    def model_loaded(self, info: Mapping[str, str], seconds: float | None) -> None:
        """The model is loaded: labels describing it (name, target, ...) and how long loading took (None: unknown,
        for a model loaded elsewhere)."""

    def annotate(self, **properties: Any) -> None:
        """Properties of the request being served, for the next published record only (EMF: request id,
        function version); never dimensions. Backends without per-request records ignore them."""

    def flush(self) -> None:
        """Publish what was collected since the last flush (EMF writes its line; others do nothing)."""

    def exposition(self) -> tuple[bytes, str] | None:
        """The scrape body and its content type for `GET /metrics`, or None where there is nothing to scrape."""
