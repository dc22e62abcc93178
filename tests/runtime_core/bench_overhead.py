"""Per-request cost of InferenceService's protocol work over a bare `session.run` (not a test; no HTTP).

    .venv/bin/python tests/runtime_core/bench_overhead.py [--seconds 20]

Builds the test models in a temporary folder, then times each operation and the bare session run on the
same input, interleaved, and prints the best of several rounds in microseconds (the least disturbed by
other load). Bounded in time by --seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import iris_model, pair_model, save

from mlfn.runtime.service import InferenceService


def best_of(fn: Callable[[], object], rounds: int, count: int) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        best = min(best, (time.perf_counter() - start) / count)
    return best * 1e6


def cases(root: Path) -> dict[str, tuple[InferenceService, dict[str, np.ndarray], dict[str, Callable[[], object]]]]:
    iris, features = iris_model()
    out = {}
    service = InferenceService.from_dir(save(iris, root / "iris"), threads=1)
    row = features[:1]
    v1 = orjson.dumps({"instances": row.tolist()})
    v2 = orjson.dumps({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": row[0].tolist()}]})
    csv_body = (",".join(map(str, row[0].tolist())) + "\n").encode()
    json = {"content-type": "application/json"}
    out["iris (ZipMap)"] = (service, {"X": row}, {
        "v1_predict": lambda: service.v1_predict("iris", v1, json),
        "v2_infer": lambda: service.v2_infer("iris", v2, json),
        "invocations json": lambda: service.invocations(v1, json),
        "invocations csv": lambda: service.invocations(csv_body, {"content-type": "text/csv"}),
    })
    pair = InferenceService.from_dir(save(pair_model(), root / "pair", 'name = "pair"\n'), threads=1)
    p1 = orjson.dumps({"instances": [{"a": [1, 2, 3], "b": [2]}]})
    p2 = orjson.dumps({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
                                  {"name": "b", "shape": [1, 1], "datatype": "INT64", "data": [2]}]})
    feeds = {"a": np.array([[1, 2, 3]], np.float32), "b": np.array([[2]])}
    out["pair (2 in, 2 out)"] = (pair, feeds, {
        "v1_predict": lambda: pair.v1_predict("pair", p1, json),
        "v2_infer": lambda: pair.v2_infer("pair", p2, json),
    })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    with tempfile.TemporaryDirectory() as folder:
        for title, (service, feeds, ops) in cases(Path(folder)).items():
            session, names = service.model.session, service.model.all_outputs
            bare = best_of(lambda: session.run(names, feeds), 7, 2000)  # noqa: B023 - used within the iteration
            print(f"{title}: session.run {bare:.1f} us")
            for label, op in ops.items():
                if time.monotonic() > deadline:
                    print("  (time is up)")
                    return
                took = best_of(op, 7, 2000)
                print(f"  {label:18s} {took:7.1f} us   +{took - bare:5.1f} us over session.run")


if __name__ == "__main__":
    main()
