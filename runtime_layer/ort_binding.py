"""onnxruntime's private binding, used in this one module: `InferenceSession._sess.run(names, feeds, options)`.

onnxruntime's Python `InferenceSession.run` validates the feed names and, for GPU providers, retries on the
CPU after an execution-provider failure; on the CPU alone, with names already checked by `Model.check`, the
binding underneath does the same work sooner. Measured in process on the forest benchmark model: 9.2 µs a
run through the binding against 11.1 µs through `run` (bench/private_apis.py measures it again).

`fast_run(session, providers)` returns the binding's run when the session is CPU-only and the binding looks
as expected, else `session.run`: a changed onnxruntime never breaks serving, it only loses the gain. The guard
test (tests/runtime_core/test_private_apis.py) fails, naming the onnxruntime version, when the binding changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

CPU = "CPUExecutionProvider"
SessionRun = Callable[[Sequence[str], dict[str, np.ndarray]], list[Any]]


def private_binding(session: Any) -> Any | None:
    """The session's C++ binding (`_sess`), or None when this onnxruntime has none with a `run`."""
    binding = getattr(session, "_sess", None)
    return binding if binding is not None and callable(getattr(binding, "run", None)) else None


def fast_run(session: Any, providers: Sequence[str]) -> SessionRun:
    """The quickest correct `run(names, feeds)` for `session` (see the module's docs)."""
    binding = private_binding(session)
    if binding is None or list(providers) != [CPU]:
        run: SessionRun = session.run
        return run
    bound_run = binding.run
    return lambda names, feeds: bound_run(names, feeds, None)  # type: ignore[no-any-return]
