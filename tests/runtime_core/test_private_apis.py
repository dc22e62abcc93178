"""Guards of the dependencies' private APIs the runtime uses: each in one adapter module, each failing loudly,
with the dependency's version, when the API changes.

Left: onnxruntime's `InferenceSession._sess` (runtime_layer/ort_binding.py; bench/private_apis.py measures its
gain). Removed, and kept out by the last test: asyncio's `_asyncio_future_blocking` (the stepper in
coroutines.py needs only public APIs) and a subclass of Mangum's `HTTPGateway` (no measurable gain).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from mlfn.runtime.ort_binding import CPU, fast_run, private_binding

RUNTIME = Path(__file__).resolve().parents[2] / "runtime_layer"
FUNCTIONS = RUNTIME.parent / "functions"


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    return ort.InferenceSession(str(FUNCTIONS / "iris" / "model.onnx"), providers=[CPU])


def test_onnxruntime_still_has_the_private_binding_the_cpu_fast_path_uses(session: ort.InferenceSession) -> None:
    changed = (f"onnxruntime {ort.__version__} changed InferenceSession._sess.run(names, feeds, run_options), "
               "which runtime_layer/ort_binding.py uses: serving falls back to session.run and loses its gain; "
               "update ort_binding.py or drop it")
    assert private_binding(session) is not None, changed
    run = fast_run(session, [CPU])
    assert run != session.run, changed
    names = [o.name for o in session.get_outputs()]
    feeds = {session.get_inputs()[0].name: np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)}
    try:
        fast = run(names, feeds)
    except Exception as exc:
        pytest.fail(f"{changed}: {exc}")
    public = session.run(names, feeds)
    np.testing.assert_array_equal(fast[0], public[0])
    assert fast[1] == public[1], changed


def test_other_providers_use_the_public_run(session: ort.InferenceSession) -> None:
    assert fast_run(session, ["CUDAExecutionProvider", CPU]) == session.run


def test_private_apis_of_dependencies_are_used_only_in_their_adapter_modules() -> None:
    allowed = {"_sess": {"ort_binding.py"}}
    banned = ("_asyncio_future_blocking", "HTTPGateway")
    for path in RUNTIME.rglob("*.py"):
        text = path.read_text()
        for name in banned:
            assert name not in text, f"{path.name} uses {name}, which the runtime no longer relies on"
        for name, modules in allowed.items():
            if re.search(rf"\b{name}\b", text):
                assert path.name in modules, f"{path.name} uses {name}: only {sorted(modules)} may"
