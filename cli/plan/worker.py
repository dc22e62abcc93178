"""The measured process of `mlfn plan`: load the model with mlfn's own runtime, then run the payload on request.

Started by `measure.py` as `python -m mlfn.cli.plan.worker MODEL_DIR PAYLOAD CONTENT_TYPE THREADS`, already inside
its CPU quota. It prints one JSON line when the model is loaded (`{"ready": ...}`), then answers each JSON line on
stdin (`{"runs": N, "seconds": S, "warmup": W}`) with one JSON line of latencies. Nothing else goes to stdout.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any


def _peak_rss_mb() -> float:
    """Peak resident memory of this process: VmHWM, which starts anew at exec. Not ru_maxrss: Linux keeps it across
    exec, so a worker started by a large process (a long test run, a benchmark) would report that process's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _say(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    model_dir, payload_path, content_type, threads = argv[0], argv[1], argv[2], int(argv[3])
    from mlfn.runtime.errors import MlfnError
    from mlfn.runtime.service import InferenceService

    body = Path(payload_path).read_bytes()
    headers = {"content-type": content_type}
    try:
        service = InferenceService.from_dir(model_dir, threads=threads)
        first = service.invocations(body, headers)
    except MlfnError as exc:
        _say({"error": f"the model refused the payload {payload_path}: {exc}"})
        return 1
    if first.status != 200:
        _say({"error": f"the payload {payload_path} answered {first.status}: {first.body[:200]!r}"})
        return 1
    _say({"ready": True, "threads": service.model.threads, "peak_rss_mb": _peak_rss_mb(),
          "response_bytes": len(first.body)})
    for line in sys.stdin:
        ask = json.loads(line)
        for _ in range(int(ask.get("warmup", 0))):
            service.invocations(body, headers)
        latencies: list[float] = []
        deadline = time.perf_counter() + float(ask["seconds"])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        while len(latencies) < int(ask["runs"]) and (not latencies or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            service.invocations(body, headers)
            latencies.append((time.perf_counter() - t0) * 1000)
        _say({"latencies_ms": latencies, "cpu_s": time.process_time() - cpu0,
              "wall_s": time.perf_counter() - wall0, "peak_rss_mb": _peak_rss_mb()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
