"""A provider that records nothing: for tests, benchmarks and users who opt out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class NoopMetrics:
    """Accepts every call and keeps nothing; `GET /metrics` answers 404 with it."""

    def request(self, route: str, status: int, seconds: float) -> None:
        pass

    def inference(self, seconds: float, rows: int) -> None:
        pass

    def batch(self, requests: int) -> None:
        pass

    def cold_start(self, seconds: float) -> None:
        pass

    def model_loaded(self, info: Mapping[str, str], seconds: float | None) -> None:
        pass

    def annotate(self, **properties: Any) -> None:
        pass

    def flush(self) -> None:
        pass

    def exposition(self) -> tuple[bytes, str] | None:
        return None
