"""SnapStart in the emulator: a sandbox's cold start from a fresh init against a restore from the snapshot.

    .venv/bin/python bench/snapstart_restore.py [--model-dir functions/iris | --size-mb 400] [--repeats 5]

The real Lambda entry point (`mlfn.runtime.lambda_handler.handler` under awslambdaric) serves the model in the
emulator's sandboxes. Fresh: a new sandbox runs the init phase (imports, the model's session) then one
invocation. Restore: the version's snapshot is taken once (init + before-snapshot hooks, as publishing does),
then each new sandbox is restored from it (`mlfn.cli.local.snapstart`: a fork of the initialised runtime) and runs
one invocation. Cold start = Init Duration (or Restore Duration) + the first invocation's Duration; medians.
`--size-mb` serves a generated model of that many MB of float32 weights (one MatMul) instead of a folder's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def big_model(directory: Path, size_mb: int) -> Path:
    """A model folder whose model.onnx holds `size_mb` MB of float32 weights read by a lookup (an embedding table):
    y = Gather(W, ids), ids int64 [batch, 4], W [rows, 16]; a call is cheap, so the figures are the load's."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rows = size_mb * 1024 * 1024 // (4 * 16)
    weights = np.random.default_rng(7).standard_normal((rows, 16), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["W", "ids"], ["y"])], "big",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 16])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(directory / "model.onnx"))
    (directory / "mlfn.toml").write_text(f'name = "big{size_mb}"\n[server]\nintra_op_threads = 1\n')
    return directory


def payload(model_dir: Path) -> bytes:
    """A direct invocation with one row of zeros for the model's single input."""
    from mlfn.runtime.spec import load_spec

    spec = load_spec(model_dir)
    shape = [d if isinstance(d, int) else 1 for d in (spec.inputs[0].shape or ())][1:]
    row: Any = 0 if spec.inputs[0].dtype is not None and spec.inputs[0].dtype.name.startswith("int") else 0.0
    for size in reversed(shape):
        row = [row] * size
    return json.dumps({"instances": [row]}).encode()


async def measure(model_dir: Path, repeats: int, memory_mb: int) -> dict[str, list[float]]:
    from mlfn.cli.local.config import FunctionConfig
    from mlfn.cli.local.sandbox import Sandbox
    from mlfn.cli.local.snapstart import Snapshot

    class Quiet:
        def write(self, group: str, stream: str, message: str) -> None:
            pass

    sink = Quiet()
    event = payload(model_dir)
    config = FunctionConfig(name="bench-snap", model_dir=str(model_dir), memory_mb=memory_mb, timeout_s=120)
    fresh: list[float] = []
    phases: dict[str, list[float]] = {"init": [], "restore": []}
    for _ in range(repeats):
        sandbox = Sandbox(config, sink, memory_mode="watchdog")
        assert await sandbox.start() is None, "the fresh sandbox failed its init"
        result = await sandbox.invoke(event)
        assert result.ok, result.payload
        fresh.append(result.init_ms + result.duration_ms)
        phases["init"].append(result.init_ms)
        await sandbox.kill()
    snap_config = FunctionConfig(**{**config.__dict__, "snapstart": True})
    snapshot = Snapshot(snap_config, sink, memory_mode="watchdog")
    started = time.perf_counter()
    await snapshot.take()
    publish_ms = (time.perf_counter() - started) * 1000
    restored: list[float] = []
    try:
        for _ in range(repeats):
            sandbox = snapshot.sandbox()
            assert await sandbox.start() is None, "the restore failed"
            result = await sandbox.invoke(event)
            assert result.ok, result.payload
            restored.append(result.restore_ms + result.duration_ms)
            phases["restore"].append(result.restore_ms)
            await sandbox.kill()
    finally:
        await snapshot.close()
    return {"fresh": fresh, "restore": restored, "publish": [publish_ms], **phases}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "functions" / "iris")
    parser.add_argument("--size-mb", type=int, default=0, help="serve a generated model of this size instead")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-mb", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlfn-bench-snap-") as tmp:
        model_dir = big_model(Path(tmp) / "big", args.size_mb) if args.size_mb else args.model_dir.resolve()
        size = (model_dir / "model.onnx").stat().st_size / 1e6
        figures = asyncio.run(measure(model_dir, args.repeats, args.memory_mb))
    fresh, restore = statistics.median(figures["fresh"]), statistics.median(figures["restore"])
    print(f"model {model_dir.name} ({size:.1f} MB), {args.repeats} sandboxes each, medians:")
    print(f"  fresh init + first invocation:  {fresh:9.1f} ms  {[round(v) for v in figures['fresh']]}")
    print(f"  restore + first invocation:     {restore:9.1f} ms  {[round(v, 1) for v in figures['restore']]}")
    print(f"  of which Init Duration {statistics.median(figures['init']):.1f} ms, "
          f"Restore Duration {statistics.median(figures['restore']):.1f} ms")
    print(f"  publish (init + snapshot, once): {figures['publish'][0]:8.1f} ms")
    print(f"  restore / fresh = {restore / fresh:.3f}  (goal <= 0.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
