"""The docs pages (`/docs`, `/redoc`, `/openapi.json`) for a core, with FastAPI imported on their first request.

Containers on mlfn's own server and the Lambda handler serve the protocol routes without FastAPI; this app stands
in front of `mlfn.runtime.app.docs_app` so that FastAPI's import (about 150 ms) is paid only by whoever reads
the docs. The core itself never imports `app`: this module is the one place that does, lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .asgi import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from .asgi import ServingCore

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


class LazyDocs:
    """The FastAPI docs app for a core, built on the first request for a docs page."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from .app import docs_app

            self._app = docs_app(self._core)
        await self._app(scope, receive, send)
