"""Loggers that import `logging` on first use.

The Lambda handler's init path logs nothing when all goes well, so it need not pay for importing `logging`
(about 5 ms of a cold start, with `traceback`, `string` and `threading`). `logger(name).warning(...)` and the
other `logging.Logger` methods work as usual; the real logger is made on the first call.
"""

from __future__ import annotations

from typing import Any


class LazyLogger:
    """Stands in for `logging.getLogger(name)` until a method is first called."""

    __slots__ = ("_logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._logger is None:
            import logging

            self._logger = logging.getLogger(self.name)
        return getattr(self._logger, attribute)


def logger(name: str) -> Any:
    """A logger named `name` whose `logging` import waits for its first use."""
    return LazyLogger(name)
