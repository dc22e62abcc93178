"""The serving core's shape: no import cycle between runtime modules, metrics providers that implement every
method their callers use, and batching attached to the service without patching the model."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from mlfn.runtime.metrics import MetricsProvider, NoopMetrics
from mlfn.runtime.metrics.emf import EmfMetrics
from mlfn.runtime.metrics.prometheus import PrometheusMetrics

RUNTIME = Path(__file__).resolve().parents[2] / "runtime_layer"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(RUNTIME).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:` (for the type checker only)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for inner in ast.walk(node))
    return skipped


def _imports(path: Path) -> set[str]:
    """Runtime modules `path` imports, at its top or lazily inside functions (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level and id(node) not in skipped:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if node.module is None:
                found.update(".".join([*base, alias.name]) for alias in node.names)
            else:
                found.add(target)
    return {name.strip(".") for name in found}


def test_runtime_modules_import_each_other_without_a_cycle() -> None:
    """Lazy imports count too: a cycle through one still means neither module can be read alone."""
    graph = {_module_name(p): _imports(p) for p in RUNTIME.rglob("*.py")}
    graph = {k: {d for d in v if d in graph and d != k} for k, v in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(dep):], dep]))
            if dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_every_metrics_provider_implements_every_method_of_the_protocol() -> None:
    wanted = {name for name, _ in inspect.getmembers(MetricsProvider, inspect.isfunction) if not name.startswith("_")}
    assert {"batch", "annotate"} <= wanted
    for provider in (NoopMetrics, EmfMetrics, PrometheusMetrics):
        missing = wanted - {name for name, _ in inspect.getmembers(provider, inspect.isfunction)}
        assert not missing, f"{provider.__name__} lacks {sorted(missing)}"


def test_no_caller_probes_the_metrics_provider_with_getattr() -> None:
    for path in RUNTIME.rglob("*.py"):
        text = path.read_text()
        assert 'getattr(metrics, "' not in text and 'getattr(self.metrics, "' not in text, path


def test_the_lambda_init_path_leaves_decompression_to_first_use() -> None:
    """zlib is imported only when a compressed body arrives (request_body.decompress)."""
    import subprocess
    import sys

    code = "import sys, mlfn.runtime.lambda_adapter; print('zlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "False"
