"""The model's onnxruntime session, configured on purpose, and the one place feeds are checked.

Session options:
- intra-op threads from the CPU share the platform meters (see `cpu_share`), or `server.intra_op_threads`;
  inter-op threads 1 and sequential execution: one request at a time per Lambda sandbox, and parallel
  branches would only fight the intra-op pool for the same share;
- threads do not spin waiting for work when the CPU share is metered (Lambda, a cgroup quota): spinning
  would burn the share the next request needs;
- graph optimization level from `server.graph_optimization`;
- providers from `server.providers` (those this onnxruntime build has, CPU always last as a fallback), by
  default CUDA when present, then CPU. A `gpu = true` model never falls back: without CUDAExecutionProvider in
  the build, or in the session once created (no GPU or driver), loading fails with one line, unless
  `MLFN_ALLOW_CPU_FOR_GPU=1` (the local emulator, which has no GPU) turns that into a warning.

A model optimised at build time is used when the directory holds one next to the model file, named
`<model stem>.optimized.onnx` (`model.optimized.onnx` for the default `model.onnx`) and not older than
the model itself. `optimized_path(spec)` gives the name packaging should write.

onnxruntime is imported here only, and only when a `Model` is built, so importing `mlfn.runtime` stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .codecs.tensors import Port
from .cpu_share import CpuShare, cpu_share, intra_op_threads
from .errors import ModelError, RequestError
from .logs import logger
from .ort_binding import fast_run
from .spec import ModelSpec

log = logger("mlfn.runtime.model")

OPTIMIZED_SUFFIX = ".optimized.onnx"
_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def optimized_path(spec: ModelSpec) -> Path:
    """Where a build-time optimised copy of the model lives (`model.onnx` -> `model.optimized.onnx`)."""
    model = spec.model_path
    return model.with_name(model.name.removesuffix(".onnx") + OPTIMIZED_SUFFIX)


def choose_model_file(spec: ModelSpec) -> Path:
    """The optimised model when present and not older than the model file, else the model file."""
    optimized = optimized_path(spec)
    try:
        if optimized.is_file() and optimized.stat().st_mtime >= spec.model_path.stat().st_mtime:
            return optimized
    except OSError:  # pragma: no cover - raced with a deletion
        pass
    return spec.model_path


def choose_providers(wanted: Sequence[str], available: Sequence[str]) -> list[str]:
    """Execution providers to ask for: the wanted ones this build has (else CUDA if present), CPU last."""
    if wanted:
        missing = [p for p in wanted if p not in available]
        if missing:
            log.warning("execution providers %s are not in this onnxruntime build (it has %s); skipping them",
                        ", ".join(missing), ", ".join(available))
        chosen = [p for p in wanted if p in available and p != CPU]
    else:
        chosen = [CUDA] if CUDA in available else []
    return [*chosen, CPU]


def require_gpu(spec: ModelSpec, providers: Sequence[str], problem: str) -> None:
    """Fail loading a `gpu = true` model that would run without CUDA (see the module docstring)."""
    if not spec.settings.gpu or CUDA in providers:
        return
    message = f"{spec.settings.model}: the model has gpu = true but {problem}"
    if os.environ.get("MLFN_ALLOW_CPU_FOR_GPU") == "1":
        log.warning("%s; running on the CPU (MLFN_ALLOW_CPU_FOR_GPU=1)", message)
        return
    raise ModelError(message)


class Model:
    """One ONNX model ready to run: `run(feeds)` checks feeds, runs the session, names the outputs."""

    def __init__(self, spec: ModelSpec, *, threads: int | None = None, share: CpuShare | None = None) -> None:
        import onnxruntime as ort

        self.spec = spec
        server = spec.settings.server
        self.share = share or cpu_share()
        self.threads = threads or intra_op_threads(spec.settings, self.share)

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: a failed run is reported once, by the app, as a 500
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[server.graph_optimization])
        if self.share.metered:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        require_gpu(spec, available, f"this onnxruntime {ort.__version__} build has no {CUDA} (it has "
                                     f"{', '.join(available)}): the image's base is CPU-only")
        self.providers = choose_providers(server.providers, available)
        self.path = choose_model_file(spec)
        try:
            session = ort.InferenceSession(str(self.path), sess_options=options, providers=self.providers)
        except Exception as exc:
            if self.path == spec.model_path:
                raise ModelError(f"{spec.settings.model}: onnxruntime cannot load the model: {exc}") from exc
            log.warning("could not load %s (%s); loading %s instead", self.path.name, exc, spec.model_path.name)
            self.path = spec.model_path
            session = ort.InferenceSession(str(self.path), sess_options=options, providers=self.providers)
        self.session = session
        require_gpu(spec, session.get_providers(), f"{CUDA} did not start (no GPU or driver?), the session has "
                                                   f"only {', '.join(session.get_providers())}")
        self._session_run = fast_run(session, self.providers)  # onnxruntime's binding on the CPU (ort_binding)
        self._invalid_argument: type[Exception] = ort.capi.onnxruntime_pybind11_state.InvalidArgument

        self.ports: dict[str, Port] = {t.name: Port.of(t) for t in spec.inputs}
        self.input_names: tuple[str, ...] = tuple(self.ports)
        self.output_names: tuple[str, ...] = tuple(o.name for o in session.get_outputs())
        self.all_outputs: list[str] = list(self.output_names)  # session.run takes a list faster than a tuple
        self._input_set = frozenset(self.input_names)
        self._output_set = frozenset(self.output_names)
        self.batched = bool(self.ports) and all(p.batched for p in self.ports.values())

    def describe(self) -> str:
        """What was loaded, how: file, providers, threads and the CPU share they came from (for logs)."""
        return (f"{self.path.name} with {', '.join(self.session.get_providers())}, {self.threads} intra-op "
                f"thread(s) (cpu share {self.share.vcpus:.2f} from {self.share.source})")

    def check(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Feeds that fit the model's inputs: names, dtypes, ranks, fixed dimensions."""
        if feeds.keys() != self._input_set:
            self._name_error(feeds)
        ports = self.ports
        return {name: ports[name].check(value) for name, value in feeds.items()}

    def _name_error(self, feeds: Mapping[str, Any]) -> None:
        expected = ", ".join(f"{p.name} ({p.described})" for p in self.ports.values())
        unknown = sorted(set(feeds) - self._input_set)
        if unknown:
            raise RequestError(f"unknown input {unknown[0]!r}; the model's inputs are {expected}",
                               input=unknown[0], expected=expected, received=", ".join(map(str, feeds)))
        missing = [n for n in self.input_names if n not in feeds]
        raise RequestError(f"missing input {missing[0]!r}; the model's inputs are {expected}",
                           input=missing[0], expected=expected, received=", ".join(map(str, feeds)) or "no inputs")

    def check_outputs(self, names: Sequence[str]) -> None:
        """Refuse output names the model does not have."""
        for name in names:
            if name not in self._output_set:
                outputs = ", ".join(self.output_names)
                raise RequestError(f"unknown output {name!r}; the model's outputs are {outputs}",
                                   output=name, expected=outputs)

    def run(self, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        """Check the feeds, run the session and return outputs by name (all, or those named in `outputs`).

        Tensor outputs are numpy arrays; sequences and maps (skl2onnx's ZipMap) are plain lists and dicts.
        """
        checked = self.check(feeds)
        names = self.all_outputs if outputs is None else list(outputs)
        if outputs is not None:
            self.check_outputs(names)
        return self.run_checked(checked, names)

    def run_checked(self, feeds: dict[str, np.ndarray], names: Sequence[str]) -> dict[str, Any]:
        """Run feeds already passed through `check` (no second check on the hot path)."""
        try:
            values = self._session_run(names, feeds)
        except self._invalid_argument as exc:
            raise RequestError(f"the model refused the input: {_ort_message(exc)}",
                               expected=self._signature_text()) from None
        except Exception as exc:
            raise ModelError(f"the model failed while running: {_ort_message(exc)}") from exc
        return dict(zip(names, values, strict=True))

    def _signature_text(self) -> str:
        return ", ".join(f"{p.name} ({p.described})" for p in self.ports.values())


def _ort_message(exc: Exception) -> str:
    text = str(exc).strip()
    for prefix in ("[ONNXRuntimeError] : ",):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text[:500]
