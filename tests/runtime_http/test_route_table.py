"""One route table: what the core serves is what the OpenAPI document (and FastAPI's docs) describes.

Every operation in `/openapi.json` is sent to the core and must reach a handler (not the core's 404 "no route" nor
a 405); every route the core's router serves must be in the document with the same methods; a route added to the
router alone, or documented alone, fails these tests.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlfn.runtime.app import create_app
from mlfn.runtime.asgi import ServingCore
from mlfn.runtime.metrics import NoopMetrics
from mlfn.runtime.routing import ROUTES, Operation, Router
from mlfn.runtime.service import InferenceService

from .conftest import FUNCTIONS


@pytest.fixture(scope="module")
def served() -> tuple[ServingCore, dict[str, Any]]:
    app = create_app(InferenceService.from_dir(FUNCTIONS / "iris"), metrics=NoopMetrics(), inline=True)
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
    return app.core, document  # type: ignore[attr-defined]


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, methods in document["paths"].items() for method in methods}


def _served(router: Router) -> set[tuple[str, str]]:
    return {(method, route.template) for route in router.routes() for method in route.methods}


def test_every_served_route_is_documented_and_every_documented_route_is_served(
        served: tuple[ServingCore, dict[str, Any]]) -> None:
    core, document = served
    assert _served(core.router) == _documented(document)
    assert _documented(document) == {(op.method, op.path) for op in ROUTES}


@pytest.mark.parametrize("op", ROUTES, ids=[op.operation_id for op in ROUTES])
def test_each_documented_operation_reaches_its_handler(served: tuple[ServingCore, dict[str, Any]],
                                                       op: Operation) -> None:
    core, _ = served
    path = op.path.replace("{name}", "iris").replace("{version}", "1")
    found = core.router.match(path)
    assert found is not None, f"{op.method} {path} is documented but not routed"
    route, _params = found
    assert route.template == op.path and op.method in route.methods
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": op.method, "path": path, "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json")]}
    asyncio.run(core(scope, receive, send))
    status = sent[0]["status"]
    if status in (404, 405):
        assert "no route" not in json.loads(sent[1]["body"])["error"] and status != 405, (op, sent)


def test_the_router_refuses_a_template_it_cannot_match() -> None:
    extra = Operation("odd", "/things/{id}", "GET", "", "", "read", "ping")
    with pytest.raises(ValueError, match="cannot match"):
        Router([*ROUTES, extra], {op.handler: object() for op in [*ROUTES, extra]})  # type: ignore[misc]
