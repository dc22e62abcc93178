"""The one route table, and the router that serves it.

`ROUTES` lists every operation the serving core answers: its OpenAPI operation id, path template, method,
summary, tag, the kind of request and answers it documents (`mlfn.runtime.openapi`), and the name of the
handler that serves it (`mlfn.runtime.handlers.Handlers`). The core routes by it, FastAPI's docs declare it,
and the OpenAPI document describes it; tests/runtime_http/test_route_table.py checks that what is served and
what is documented are the same.

`Router.match(path)` costs one dictionary lookup for a fixed path and a split of the path for a model's
routes (`/v1/models/{name}...`, `/v2/models/{name}...`); it never tries the templates one by one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

SAGEMAKER, KSERVE_V1, OIP_V2, OPERATIONS = "SageMaker", "KServe v1", "Open Inference Protocol v2", "Operations"
V1_MODEL = "/v1/models/{name}"
V2_MODEL = "/v2/models/{name}"
V2_VERSION = "/v2/models/{name}/versions/{version}"


class Operation:
    """One method on one path: how it is documented and which handler serves it (a plain class: a NamedTuple
    costs a third of a millisecond of Lambda init to define)."""

    __slots__ = ("handler", "kind", "method", "operation_id", "path", "summary", "tag")

    def __init__(self, operation_id: str, path: str, method: str, summary: str, tag: str, kind: str,
                 handler: str) -> None:
        self.operation_id = operation_id
        self.path = path
        self.method = method
        self.summary = summary
        self.tag = tag
        self.kind = kind  # what openapi documents: "index", "ping", "invocations", "read", "v1", "v2", "metrics"
        self.handler = handler  # the name of the `Handlers` method that answers it

    def __repr__(self) -> str:
        return f"Operation({self.operation_id!r}, {self.method} {self.path})"


ROUTES: tuple[Operation, ...] = (
    Operation("index", "/", "GET", "What this server serves: model name, readiness, protocol routes", OPERATIONS,
              "index", "index"),
    Operation("ping", "/ping", "GET", "Health check: 200 with an empty body once the model is loaded", SAGEMAKER,
              "ping", "ping"),
    Operation("invocations", "/invocations", "POST", "SageMaker inference", SAGEMAKER, "invocations", "invocations"),
    Operation("invocations_root", "/", "POST", "Inference at the root (alias of /invocations)", SAGEMAKER,
              "invocations", "invocations"),
    Operation("v1_models", "/v1/models", "GET", "Models served", KSERVE_V1, "read", "v1_models"),
    Operation("v1_model", V1_MODEL, "GET", "Model status", KSERVE_V1, "read", "v1_model"),
    Operation("v1_predict", f"{V1_MODEL}:predict", "POST", "Predict", KSERVE_V1, "v1", "v1_predict"),
    Operation("v2_server_metadata", "/v2", "GET", "Server metadata", OIP_V2, "read", "v2_server_metadata"),
    Operation("v2_live", "/v2/health/live", "GET", "Liveness", OIP_V2, "read", "v2_live"),
    Operation("v2_ready", "/v2/health/ready", "GET", "Readiness", OIP_V2, "read", "v2_ready"),
    Operation("v2_model_metadata", V2_MODEL, "GET", "Model metadata", OIP_V2, "read", "v2_model_metadata"),
    Operation("v2_model_ready", f"{V2_MODEL}/ready", "GET", "Model readiness", OIP_V2, "read", "v2_model_ready"),
    Operation("v2_infer", f"{V2_MODEL}/infer", "POST", "Inference", OIP_V2, "v2", "v2_infer"),
    Operation("v2_model_config", f"{V2_MODEL}/config", "GET", "Model configuration (Triton extension)", OIP_V2,
              "read", "v2_model_config"),
    Operation("v2_version_metadata", V2_VERSION, "GET", "Model metadata of a version", OIP_V2, "read",
              "v2_model_metadata"),
    Operation("v2_version_ready", f"{V2_VERSION}/ready", "GET", "Model readiness of a version", OIP_V2, "read",
              "v2_model_ready"),
    Operation("v2_version_infer", f"{V2_VERSION}/infer", "POST", "Inference on a version", OIP_V2, "v2", "v2_infer"),
    Operation("v2_version_config", f"{V2_VERSION}/config", "GET", "Model configuration of a version", OIP_V2,
              "read", "v2_model_config"),
    Operation("v2_repository_index", "/v2/repository/index", "POST", "Models in the repository (Triton extension)",
              OIP_V2, "read", "v2_repository_index"),
    Operation("metrics", "/metrics", "GET", "Prometheus metrics (404 on Lambda, which publishes CloudWatch EMF)",
              OPERATIONS, "metrics", "metrics"),
)

Handler = Callable[[Any], Awaitable[Any]]  # (Request) -> Reply, see `mlfn.runtime.handlers`


class Route:
    """A route template (the metrics label) and its handler per HTTP method."""

    __slots__ = ("methods", "template")

    def __init__(self, template: str, methods: Mapping[str, Handler]) -> None:
        self.template = template
        self.methods = methods


class Router:
    """Matches a request path to its `Route` and path parameters, for the operations it is given."""

    def __init__(self, operations: Iterable[Operation], handlers: Mapping[str, Handler]) -> None:
        by_path: dict[str, dict[str, Handler]] = {}
        for operation in operations:
            by_path.setdefault(operation.path, {})[operation.method] = handlers[operation.handler]
        self.fixed: dict[str, Route] = {}
        self.v1: dict[str, Route] = {}  # by what follows `{name}`: "" or ":predict"
        self.v2: dict[str, Route] = {}  # by what follows `{name}`: "", "/ready", "/versions/{version}/infer", ...
        for path, methods in by_path.items():
            route = Route(path, methods)
            if "{" not in path:
                self.fixed[path] = route
            elif path.startswith(V1_MODEL) and path[len(V1_MODEL):] in ("", ":predict"):
                self.v1[path[len(V1_MODEL):]] = route
            elif path.startswith(V2_MODEL) and "{" not in path.replace("{version}", "")[len(V2_MODEL):]:
                self.v2[path[len(V2_MODEL):]] = route
            else:
                raise ValueError(f"the router cannot match the path template {path!r}")

    def routes(self) -> list[Route]:
        """Every route served."""
        return [*self.fixed.values(), *self.v1.values(), *self.v2.values()]

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for a path and its parameters, or None."""
        route = self.fixed.get(path)
        if route is not None:
            return route, {}
        if path.startswith("/v1/models/"):
            rest = path[11:]
            if rest.endswith(":predict"):
                name, key = rest[:-8], ":predict"
            else:
                name, key = rest, ""
            found = self.v1.get(key)
            return (found, {"name": name}) if found is not None and name and "/" not in name else None
        if path.startswith("/v2/models/"):
            parts = path[11:].split("/")
            name = parts[0]
            if not name:
                return None
            params = {"name": name}
            prefix = ""
            if len(parts) >= 3 and parts[1] == "versions" and parts[2]:
                params["version"] = parts[2]
                parts = parts[3:]
                prefix = "/versions/{version}"
            else:
                parts = parts[1:]
            if len(parts) > 1:
                return None
            tail = parts[0] if parts else ""
            found = self.v2.get(f"{prefix}/{tail}" if tail else prefix)
            return (found, params) if found is not None else None
        return None
