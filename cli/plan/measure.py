"""Measure a model on this machine at each Lambda memory size, with the CPU share Lambda gives that size.

Lambda gives a function CPU in proportion to its memory: 1,769 MB is one vCPU, up to 6 vCPUs at 10,240 MB
("Configure Lambda function memory"; `mlfn.runtime.cpu_share.lambda_vcpus`). The model runs in a child process
(`worker.py`) loaded by mlfn's own runtime, with the thread count the runtime picks for that size, and the share
is applied to it, in order of preference, as:

1. a cgroup v2 child with `cpu.max` (quota per period) when our cgroup delegates `cpu`;
2. a cgroup v1 `cpu` child with `cpu.cfs_quota_us` when that hierarchy is writable;
3. otherwise "scaled": the child is pinned to ceil(share) cores (`sched_setaffinity`) and, below one vCPU,
   latencies measured on one core are divided by the share (exact only for CPU-bound work).

Either cgroup gets a high CPU weight as well, so a busy machine does not starve it below its quota; what it
was actually given is measured (CPU seconds over wall seconds) and reported as `delivered_vcpus`. A share above
the host's cores cannot be reproduced: those sizes are measured at every host core and marked `capped`.
The period Lambda meters with is not documented; `PERIOD_US` is ours.

Every loop is bounded in runs and seconds, so a plan takes about a minute whatever the model.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlfn.runtime.cpu_share import MB_PER_LAMBDA_VCPU, lambda_vcpus

from ..console import CliError
from ..local.memory import _v1_base, _v2_base

LAMBDA_SIZES_MB = (128, 256, 512, 1024, 1536, 1769, 2048, 3008, 4096, 6144, 8192, 10240)
PERIOD_US = 20_000  # CFS period of our quota (Lambda's is not documented)
MIN_QUOTA_US = 1_000  # the kernel refuses a smaller quota
HIGH_WEIGHT = {"cgroup2": ("cpu.weight", "10000"), "cgroup1": ("cpu.shares", "10240")}
READY_TIMEOUT_S = 60.0
CONTENT_TYPES = {".json": "application/json", ".csv": "text/csv", ".npy": "application/x-npy",
                 ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".txt": "text/plain"}


@dataclass
class SizeResult:
    """Latency at one Lambda memory size."""

    memory_mb: int
    vcpus: float  # the share Lambda gives this size
    applied_vcpus: float  # the share applied here (capped at the host's cores)
    threads: int
    runs: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    delivered_vcpus: float  # CPU seconds / wall seconds while measuring
    capped: bool = False
    fits: bool = True
    measured_s: float = 0.0  # wall seconds of the measured runs

    @property
    def starved(self) -> bool:
        """The host gave less CPU than the share (busy machine): latency here is pessimistic. Judged only on runs
        long enough to span many quota periods, and against one vCPU at most (one thread is always busy)."""
        return self.measured_s >= 50 * PERIOD_US / 1e6 and self.delivered_vcpus < 0.8 * min(self.applied_vcpus, 1.0)


@dataclass
class Measurement:
    """What `measure` found: how the share was applied, init time, peak memory and latency per size."""

    model: str
    payload: str
    method: str  # "cgroup2 cpu.max" | "cgroup1 cpu.cfs_quota_us" | "scaled"
    how: str  # one sentence for the report
    host_cpus: int
    init_ms: float  # cold start at one vCPU: interpreter, imports, model load, first request
    peak_rss_mb: float
    sizes: list[SizeResult] = field(default_factory=list)
    gpu: bool = False  # the model sets gpu = true: Lambda cannot run it
    skipped: list[str] = field(default_factory=list)  # sizes not measured, and why
    request_bytes: int = 0  # the payload's size (SageMaker Serverless bills data processed in and out)
    response_bytes: int = 0  # the model's answer to it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def init_ms_at(self, memory_mb: int) -> float:
        """Init time at a size: measured at one vCPU, scaled by 1/share below it (imports are CPU-bound and
        single-threaded, so more than one vCPU does not shorten them)."""
        return self.init_ms / min(1.0, lambda_vcpus(memory_mb))

    @property
    def smallest_fit_mb(self) -> int:
        return next((s for s in LAMBDA_SIZES_MB if s >= self.peak_rss_mb), LAMBDA_SIZES_MB[-1])


def payload_for(model_dir: Path, explicit: str | None) -> tuple[Path, str]:
    """The request body to measure with and its content type: --payload, else example.json, else examples/*."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise CliError(f"--payload {explicit}: no such file; expected a request body (JSON, CSV, .npy, image)")
    elif (model_dir / "example.json").is_file():
        path = model_dir / "example.json"
    else:
        examples = sorted(p for p in (model_dir / "examples").glob("*") if p.is_file())
        if not examples:
            raise CliError(f"{model_dir}: no example.json or examples/ file to measure with; pass --payload FILE")
        path = examples[0]
    return path, CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


# ------------------------------------------------------------------ applying a CPU share


class CpuLimit:
    """A CPU share applied to child processes: a cgroup quota, or pinning plus scaling.

    The local emulator uses it too, when `MLFN_LOCAL_CPU_SHARE=1`, to give a Lambda sandbox its memory size's
    share (`lambda_cpu_cap`), so what `mlfn plan` predicts can be checked against the emulated function.
    """

    def __init__(self, method: str, group: Path | None, host_cpus: int) -> None:
        self.method = method
        self.group = group
        self.host_cpus = host_cpus

    @classmethod
    def create(cls, name: str, *, prefer: str = "auto") -> CpuLimit:
        """A cgroup named `name` under ours when one is writable (see the module docstring), else "scaled"."""
        host = len(os.sched_getaffinity(0))
        if prefer == "auto":
            for base, mode in ((_v2_base("cpu"), "cgroup2"), (_v1_base("cpu", "cpu.cfs_quota_us"), "cgroup1")):
                if base is None or not os.access(base, os.W_OK):
                    continue
                group = base / name
                try:
                    group.mkdir(exist_ok=True)
                    weight_file, weight = HIGH_WEIGHT[mode]
                    with contextlib.suppress(OSError):
                        (group / weight_file).write_text(weight)
                    limit = cls(mode, group, host)
                    limit.set_share(1.0)
                    return limit
                except OSError:
                    with contextlib.suppress(OSError):
                        group.rmdir()
        return cls("scaled", None, host)

    @property
    def described(self) -> str:
        if self.method == "cgroup2":
            return f"cgroup v2 cpu.max quota per {PERIOD_US // 1000} ms period ({self.group})"
        if self.method == "cgroup1":
            return f"cgroup v1 cpu.cfs_quota_us per {PERIOD_US // 1000} ms period ({self.group})"
        return ("no writable cgroup: pinned to ceil(share) cores with sched_setaffinity, latencies below one "
                "vCPU scaled by 1/share from the one-core figure")

    def applied(self, vcpus: float) -> float:
        return min(vcpus, float(self.host_cpus))

    def set_share(self, vcpus: float) -> None:
        """Set the quota of the group to `vcpus` (capped at the host's cores)."""
        if self.group is None:
            return
        quota = max(MIN_QUOTA_US, round(self.applied(vcpus) * PERIOD_US))
        if self.method == "cgroup2":
            (self.group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:  # v1: lower the quota before the period so the pair is always valid
            (self.group / "cpu.cfs_quota_us").write_text("-1")
            (self.group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.group / "cpu.cfs_quota_us").write_text(str(quota))

    def join(self, vcpus: float) -> Callable[[], None]:
        """A `preexec_fn` that puts the child under this limit before it runs Python."""
        group = self.group
        cores = sorted(os.sched_getaffinity(0))[: max(1, math.ceil(self.applied(vcpus)))]

        def enter() -> None:
            if group is not None:
                (group / "cgroup.procs").write_text(str(os.getpid()))
            else:
                os.sched_setaffinity(0, cores)

        return enter

    def add(self, pid: int) -> None:
        """Put a running process (and its threads) under this limit (cgroups only)."""
        if self.group is not None:
            (self.group / "cgroup.procs").write_text(str(pid))

    def scale(self, vcpus: float) -> float:
        """The factor to multiply measured latencies by ("scaled" method below one vCPU only)."""
        return 1.0 / vcpus if self.method == "scaled" and vcpus < 1 else 1.0

    def release(self) -> None:
        if self.group is not None:
            with contextlib.suppress(OSError):
                self.group.rmdir()


def lambda_cpu_cap(pid: int, memory_mb: int, name: str) -> CpuLimit | None:
    """Hold `pid` to the CPU share Lambda gives `memory_mb` when `MLFN_LOCAL_CPU_SHARE=1` and a cgroup is
    writable; None otherwise (the emulator's sandboxes then run unmetered, as they always have)."""
    if os.environ.get("MLFN_LOCAL_CPU_SHARE") != "1":
        return None
    limit = CpuLimit.create(name)
    if limit.group is None:
        return None
    try:
        limit.set_share(lambda_vcpus(memory_mb))
        limit.add(pid)
    except OSError:
        limit.release()
        return None
    return limit


# ------------------------------------------------------------------ the measured child


class Worker:
    """One worker process: the model loaded with a given thread count, answering run requests."""

    def __init__(self, model_dir: Path, payload: Path, content_type: str, threads: int,
                 preexec: Callable[[], None]) -> None:
        # no GPU here: a gpu = true model is measured on the CPU (and its Lambda rows are marked unusable)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFN_ALLOW_CPU_FOR_GPU": "1"}
        env.pop("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlfn.cli.plan.worker", str(model_dir), str(payload), content_type, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            preexec_fn=preexec,  # joins the cgroup before Python starts, so init is measured inside it
        )
        ready = self._read(READY_TIMEOUT_S)
        self.init_ms = (time.perf_counter() - self.started) * 1000
        self.threads = int(ready["threads"])
        self.warm = False  # True once a measured round ran (the ready answer already ran one request)
        self.peak_rss_mb = float(ready["peak_rss_mb"])
        self.response_bytes = int(ready.get("response_bytes", 0))

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            err = (self.proc.stderr.read() if self.proc.stderr else "").strip().splitlines()
            why = err[-1] if err else f"no answer in {timeout:.0f}s"
            raise CliError(f"the measured model process failed: {why}")
        doc: dict[str, Any] = json.loads(line)
        if "error" in doc:
            self.close()
            raise CliError(str(doc["error"]))
        return doc

    def run(self, runs: int, seconds: float, warmup: int) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"runs": runs, "seconds": seconds, "warmup": warmup}) + "\n")
        self.proc.stdin.flush()
        answer = self._read(READY_TIMEOUT_S + seconds * 4)
        self.peak_rss_mb = max(self.peak_rss_mb, float(answer["peak_rss_mb"]))
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def lambda_threads(memory_mb: int, host_cpus: int) -> int:
    """The intra-op threads mlfn's runtime picks at this size on Lambda, bounded by this host's cores."""
    from mlfn.runtime.cpu_share import CpuShare

    return min(CpuShare(lambda_vcpus(memory_mb), "lambda-memory").threads, host_cpus)


@contextlib.contextmanager
def _workers() -> Iterator[dict[int, Worker]]:
    pool: dict[int, Worker] = {}
    try:
        yield pool
    finally:
        for worker in pool.values():
            worker.close()


def measure(model_dir: str | Path, *, payload: str | None = None, sizes: Sequence[int] = LAMBDA_SIZES_MB,
            runs: int = 200, seconds_per_size: float = 1.5, budget_s: float = 90.0, prefer: str = "auto",
            progress: Callable[[str], None] = lambda _m: None) -> Measurement:
    """Measure `model_dir` at each Lambda memory size in `sizes` (see the module docstring).

    Sizes below the model's peak memory are not measured (the function could not run there); once `budget_s`
    has passed, the remaining sizes are skipped too and listed in `Measurement.skipped`.
    """
    from mlfn.runtime.spec import load_spec

    model_dir = Path(model_dir)
    spec = load_spec(model_dir)
    body, content_type = payload_for(model_dir, payload)
    limit = CpuLimit.create(f"mlfn-plan-{os.getpid()}", prefer=prefer)
    try:
        with _workers() as pool:
            # init is measured at one vCPU: the first worker starts under that quota
            limit.set_share(1.0)
            first = Worker(model_dir, body, content_type, lambda_threads(MB_PER_LAMBDA_VCPU, limit.host_cpus),
                           limit.join(1.0))
            pool[first.threads] = first
            result = Measurement(spec.name, str(body), limit.method, limit.described, limit.host_cpus,
                                 first.init_ms, first.peak_rss_mb, gpu=spec.settings.gpu,
                                 request_bytes=body.stat().st_size, response_bytes=first.response_bytes)
            progress(f"loaded {spec.name} in {first.init_ms:.0f} ms at 1 vCPU ({limit.described})")
            done: dict[float, SizeResult] = {}
            raw: dict[tuple[int, int], dict[str, Any]] = {}
            deadline = time.monotonic() + budget_s
            for memory_mb in sorted(sizes):
                if memory_mb < first.peak_rss_mb:
                    result.skipped.append(f"{memory_mb} MB (below the model's peak memory)")
                    continue
                if time.monotonic() > deadline:
                    result.skipped.append(f"{memory_mb} MB (time bound of {budget_s:.0f}s reached)")
                    continue
                vcpus = lambda_vcpus(memory_mb)
                applied = limit.applied(vcpus)
                threads = lambda_threads(memory_mb, limit.host_cpus)
                if threads not in pool:
                    pool[threads] = Worker(model_dir, body, content_type, threads, limit.join(applied))
                key = round(applied, 6) if vcpus >= limit.host_cpus else -memory_mb
                if key in done:  # a share past the host's cores: same figure as the last one measured
                    result.sizes.append(SizeResult(**{**asdict(done[key]), "memory_mb": memory_mb,
                                                      "vcpus": vcpus}))
                    continue
                # "scaled": one run per (threads, cores) pinned, every share below one vCPU scaled from it
                raw_key = (threads, math.ceil(applied)) if limit.method == "scaled" else (threads, -memory_mb)
                if raw_key not in raw:
                    limit.set_share(applied)
                    worker = pool[threads]
                    raw[raw_key] = worker.run(runs, seconds_per_size, warmup=0 if worker.warm else 1)
                    worker.warm = True
                answer = raw[raw_key]
                factor = limit.scale(vcpus)
                latencies = [ms * factor for ms in answer["latencies_ms"]]
                size = SizeResult(
                    memory_mb, vcpus, applied, threads, len(latencies), percentile(latencies, 50),
                    percentile(latencies, 99), sum(latencies) / len(latencies),
                    answer["cpu_s"] / answer["wall_s"] if answer["wall_s"] > 0 else 0.0,
                    capped=vcpus > limit.host_cpus, measured_s=answer["wall_s"],
                )
                done[key] = size
                result.sizes.append(size)
                progress(f"{memory_mb} MB ({vcpus:.2f} vCPU): p50 {size.p50_ms:.2f} ms, p99 {size.p99_ms:.2f} ms")
            result.peak_rss_mb = max(w.peak_rss_mb for w in pool.values())
    finally:
        limit.release()
    for size in result.sizes:
        size.fits = size.memory_mb >= result.peak_rss_mb
    return result
