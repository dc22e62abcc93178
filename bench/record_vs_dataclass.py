"""Is `mlfn.runtime.record` still worth having? Its cost against `dataclasses` on the Lambda init path.

    .venv/bin/python -m bench.record_vs_dataclass [--classes 24] [--repeats 9]

In fresh interpreters (bytecode cached, as in an image), after `import orjson` (which the handler's path
imports anyway, and which imports `dataclasses`): import the module and define `--classes` value classes of
four fields with defaults, frozen (as the runtime's are), once with `@dataclass(frozen=True)` and once with
`@record`; medians of alternating runs, in milliseconds. The runtime defines about two dozen on the handler's path.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

BODY = """
import time
import orjson  # on the handler's path anyway: it imports dataclasses
t = time.perf_counter()
{imports}
for i in range({classes}):
    ns = {{"__annotations__": {{"a": "int", "b": "str", "c": "float", "d": "tuple[int, ...]"}}, "c": 0.0, "d": ()}}
    {decorate}(type(f"C{{i}}", (), ns))
print((time.perf_counter() - t) * 1000)
"""
KINDS = {
    "dataclasses": ("from dataclasses import dataclass", "dataclass(frozen=True)"),
    "record": ("from mlfn.runtime.record import record", "record"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(args.repeats):
        for kind, (imports, decorate) in KINDS.items():
            code = BODY.format(imports=imports, decorate=decorate, classes=args.classes)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            times[kind].append(float(done.stdout.strip()))
    for kind, values in times.items():
        print(f"{kind}: import + {args.classes} frozen classes {statistics.median(values):.1f} ms (median of "
              f"{args.repeats})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
