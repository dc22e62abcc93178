"""Fixtures of the performance-feature tests: small real models, and the real server from tests/runtime_http.

The server class and model writer are those of `tests/runtime_http/conftest.py` (loaded by path, since test
folders are not packages), so these tests start `python -m mlfn.runtime.server serve` exactly as those do.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import onnx
import pytest
from onnx import TensorProto, helper


def _load_http_conftest() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "runtime_http" / "conftest.py"
    spec = importlib.util.spec_from_file_location("mlfn_tests_runtime_http_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


http = _load_http_conftest()
Server = http.Server
write_model = http.write_model
doubler_graph = http.doubler_graph
FUNCTIONS = http.FUNCTIONS
environment = http.environment

BATCHING = "[batching]\nmax_batch_size = 32\nmax_wait_ms = 40\n"


def gather_graph() -> onnx.GraphProto:
    """y = x[row, idx[row]] for x float32[batch, 4], idx int64[batch, 1]: an index past 3 fails inside onnxruntime."""
    return helper.make_graph(
        [helper.make_node("GatherElements", ["x", "idx"], ["y"], axis=1)], "gather",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("idx", TensorProto.INT64, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
    )


def fixed_graph() -> onnx.GraphProto:
    """y = -x for x float32[3]: no batch dimension, so nothing may be stacked."""
    return helper.make_graph(
        [helper.make_node("Neg", ["x"], ["y"])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )


@pytest.fixture(scope="session")
def perf_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("perf-models")
    iris = root / "iris"
    iris.mkdir()
    (iris / "model.onnx").write_bytes((FUNCTIONS / "iris" / "model.onnx").read_bytes())
    (iris / "mlfn.toml").write_text('name = "iris"\n' + BATCHING, encoding="utf-8")
    return {
        "doubler": write_model(root / "doubler", doubler_graph(), 'name = "doubler"\n' + BATCHING),
        "gather": write_model(root / "gather", gather_graph(), 'name = "gather"\n' + BATCHING),
        "fixed": write_model(root / "fixed", fixed_graph(), 'name = "fixed"\n' + BATCHING),
        "unbatched": write_model(
            root / "unbatched", doubler_graph(), 'name = "unbatched"\n[batching]\nmax_batch_size = 1\n'
        ),
        "iris": iris,
    }


@pytest.fixture(scope="session")
def perf_server(perf_models: dict[str, Path]) -> Iterator[object]:
    """Start the server of a perf model on first use (by name); stop them all with SIGTERM at the end."""
    started: dict[str, object] = {}

    def server_for(name: str) -> object:
        if name not in started:
            server = Server(perf_models[name])
            server.wait_ready()
            started[name] = server
        return started[name]

    yield server_for
    codes = {name: server.stop() for name, server in started.items()}  # type: ignore[attr-defined]
    assert all(code == 0 for code in codes.values()), codes
