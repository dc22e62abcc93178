"""Build-time graph optimisation and a load-time/memory probe, each run in a fresh Python process so the numbers
are the model's own (peak RSS of a process that imports onnxruntime and opens one session).

The optimised graph keeps its large initializers (1 MiB and more) in a data file beside it (`<graph>.data`,
offsets page-aligned by onnxruntime): a session then maps them from the file instead of parsing them out of one
large protobuf, which for a 400 MB model halves the CPU of session creation (bench/large_model.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# "extended" keeps the graph portable across CPUs ("all" adds layout changes tied to the build machine's CPU);
# the container (GPU) flavour gets "basic" so no CPU-only fused operators end up in a graph meant for CUDA.
LEVELS = {"lambda": "ORT_ENABLE_EXTENDED", "gpu": "ORT_ENABLE_BASIC"}
EXTERNAL_MIN_BYTES = 1 << 20  # smaller initializers stay in the graph: mapping them would save nothing
DATA_SUFFIX = ".data"

_PROBE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import onnxruntime as ort
t1 = time.perf_counter()
so = ort.SessionOptions()
so.intra_op_num_threads = 1
if sys.argv[2]:
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, sys.argv[3])
    so.optimized_model_filepath = sys.argv[2]
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name", sys.argv[4])
    so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", sys.argv[5])
else:
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
t2 = time.perf_counter()
# VmHWM starts anew at exec; ru_maxrss would carry the peak of the process that started this one
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
peak_kib = int(hwm[0]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "peak_rss_mb": peak_kib / 1024}))
"""


class OptimizeError(Exception):
    """onnxruntime could not load or optimise the model."""


@dataclass(frozen=True)
class LoadProfile:
    """How long a session takes to open and the peak memory of the process that opened it."""

    load_s: float
    import_s: float
    peak_rss_mb: float

    def to_json(self) -> dict[str, float]:
        return {"load_s": round(self.load_s, 4), "import_s": round(self.import_s, 4),
                "peak_rss_mb": round(self.peak_rss_mb, 1)}


def _run_probe(model: Path, optimized_out: Path | None = None, level: str = "") -> LoadProfile:
    data = data_file(optimized_out).name if optimized_out else ""
    args = [sys.executable, "-c", _PROBE, str(model), str(optimized_out or ""), level, data, str(EXTERNAL_MIN_BYTES)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise OptimizeError(f"onnxruntime could not load {model.name}: {tail}")
    d = json.loads(proc.stdout.strip().splitlines()[-1])
    return LoadProfile(d["load_s"], d["import_s"], d["peak_rss_mb"])


def profile(model: Path) -> LoadProfile:
    return _run_probe(model)


def data_file(graph: Path) -> Path:
    """Where the optimised graph `graph` keeps its large initializers (`model.optimized.onnx.data`)."""
    return graph.with_name(graph.name + DATA_SUFFIX)


def optimize(model: Path, out: Path, flavour: str) -> list[Path]:
    """Write onnxruntime's offline-optimised graph of `model` to `out`, its large initializers to `out`.data;
    returns the files written (the graph, then the data file when any initializer went there)."""
    _run_probe(model, out, LEVELS[flavour])
    if not out.is_file():
        raise OptimizeError(f"onnxruntime wrote no optimised model for {model.name}")
    data = data_file(out)
    return [out, data] if data.is_file() and data.stat().st_size else [out]


def lambda_memory_needed(peak_rss_mb: float) -> int:
    """The Lambda memory size (MB, set in 1 MB steps) a process of this peak RSS fits: 1.5 x peak + 128 MB, room
    for requests' tensors, the runtime's own buffers and Lambda's agent."""
    return math.ceil(peak_rss_mb * 1.5 + 128)


def advice(p: LoadProfile, lambda_memory_mb: int) -> str:
    """A one-line hint for the target: Lambda's init phase is 10 s and memory at most 10,240 MB."""
    need = lambda_memory_needed(p.peak_rss_mb)
    if p.load_s > 8 or need > 10240:
        return (f"load {p.load_s:.2f}s, peak {p.peak_rss_mb:.0f} MB: too heavy for Lambda's 10 s init / 10 GB; "
                "use target sagemaker or ecs")
    if need > lambda_memory_mb:
        return f"load {p.load_s:.2f}s, peak {p.peak_rss_mb:.0f} MB: raise lambda.memory_mb to at least {need}"
    return f"load {p.load_s:.2f}s, peak {p.peak_rss_mb:.0f} MB: fits Lambda at lambda.memory_mb = {lambda_memory_mb}"
