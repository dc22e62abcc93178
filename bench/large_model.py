"""A large model (>= 400 MB of float32 weights): build, push, Lambda init and memory, against bare onnxruntime.

    .venv/bin/python -m bench.large_model [--mb 400] [--base PATH|none] [--repeats 3] [--keep DIR]

The model is generated at run time (never committed): a deep MLP of square `Gemm` layers (width 4096, float32,
weights from a fixed seed, as initializers in the model file) in a temp folder with an `mlfn.toml` and a hooks
file. It measures, each step in a fresh process where memory counts:
- `mlfn build` (and `mlfn build --optimize`): wall time, peak RSS of the build, image size (all layers,
  compressed) and the model layers;
- `mlfn push` to Debian's `docker-registry` on 127.0.0.1 (a temp store): bytes uploaded on the first push, after
  only the model changed (one layer's weights re-seeded), after only the hook changed, and with nothing changed;
  peak RSS of the push;
- Lambda init: `import mlfn.runtime.lambda_handler` (imports plus the model's session, what Lambda's init phase
  runs) on the model folder as the image holds it (its model layers unpacked), against `import onnxruntime;
  InferenceSession(model)` on the same file; fresh interpreters taking turns, medians; peak RSS (VmHWM) of
  each, and the smallest Lambda memory size that fits it by the rule `mlfn build --optimize` hints with
  (1.5 x peak RSS + 128 MB, rounded up to a whole MB; Lambda sets memory in 1 MB steps from 128 MB).

The base is the one `mlfn build` resolves (`--base` as for `mlfn build`); with a descriptor base (layers not
stored here) the push carries the model's own layers only, and `--base none` makes a model-only image.
The machine's load average is printed: on a shared machine every time grows; bytes and memory do not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261204
WIDTH = 4096
HOOKS = '''"""Hooks of the benchmark's large model ({version})."""


def preprocess(payload, context):
    return payload
'''
TOML = """name = "bench-large"
description = "deep MLP, {mb} MB of seeded float32 weights"
hooks = "hooks.py"

[server]
intra_op_threads = 1
"""


# A process's own peak RSS: VmHWM starts afresh at exec, where ru_maxrss keeps the parent's peak (this process
# holds the generated model, so every child would report at least its ~2 GB).
VMHWM_MB = "int(next(x for x in open('/proc/self/status') if x.startswith('VmHWM')).split()[1]) / 1024"


def write_model(model_dir: Path, mb: int, reseed_layer: int | None = None) -> int:
    """A deep MLP of `mb` MB of weights at `model_dir/model.onnx`; `reseed_layer` gives that layer new weights
    (the model changed, nothing else). Returns the file's size."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = max(1, round(mb * 1e6 / (WIDTH * WIDTH * 4)))
    nodes, inits = [], []
    previous = "input"
    for i in range(layers):
        rng = np.random.default_rng([SEED, i, 1 if i == reseed_layer else 0])
        weight = (rng.standard_normal((WIDTH, WIDTH), dtype=np.float32) * np.float32(np.sqrt(2.0 / WIDTH)))
        inits += [numpy_helper.from_array(weight, f"w{i}"), numpy_helper.from_array(np.zeros(WIDTH, np.float32),
                                                                                    f"b{i}")]
        del weight
        last = i == layers - 1
        out = "output" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [previous, f"w{i}", f"b{i}"], [out if last else f"g{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"g{i}"], [out]))
        previous = out
    graph = helper.make_graph(
        nodes, "large_mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", WIDTH])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlfn-bench")
    model.ir_version = 8
    path = model_dir / "model.onnx"
    onnx.save(model, path)
    return path.stat().st_size


def write_folder(model_dir: Path, mb: int) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    write_model(model_dir, mb)
    (model_dir / "mlfn.toml").write_text(TOML.format(mb=mb))
    (model_dir / "hooks.py").write_text(HOOKS.format(version="v1"))


def mlfn(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float, float, float]:
    """Run `mlfn ARGS --json` in a fresh process: (its JSON answer, wall seconds, peak RSS MB of the process,
    CPU seconds of it and its children: on a loaded machine wall time mostly measures the wait for a core)."""
    code = (f"import atexit, sys; atexit.register(lambda: print({VMHWM_MB}, file=sys.stderr)); "
            "from mlfn.cli.main import main; sys.exit(main(sys.argv[1:]))")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args, "--json"], capture_output=True, text=True, env=env,
                          timeout=1800, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode != 0:
        raise RuntimeError(f"mlfn {' '.join(args)} failed: {done.stderr[-2000:]}")
    peak = float(done.stderr.strip().splitlines()[-1])
    return json.loads(done.stdout), seconds, peak, cpu


def image_bytes(layout: Path) -> tuple[int, int]:
    """(compressed bytes of all the image's layers, number of layers) from the layout's manifest."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][-1]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_text())
    return sum(layer["size"] for layer in manifest["layers"]), len(manifest["layers"])


def unpack_model(built: dict[str, Any], dest: Path) -> Path:
    """The model folder as the image holds it: the model's two layers unpacked; returns /opt/mlfn/model there."""
    blobs = Path(built["layout"]) / "blobs" / "sha256"
    for layer in built["layers"]:
        with tarfile.open(blobs / layer["digest"].split(":")[1], "r:gz") as tar:
            tar.extractall(dest, filter="data")
    return dest / "opt" / "mlfn" / "model"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Debian's docker-registry on 127.0.0.1, storing under `root` (as tests/packaging/conftest.py starts it)."""
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("docker-registry did not start (Debian package docker-registry)") from None
            time.sleep(0.1)


INIT_TIMER = ("import time; t, c = time.perf_counter(), time.process_time(); {}; "
              "s, c = time.perf_counter() - t, time.process_time() - c; print(s, c, " + VMHWM_MB + ")")


def init_times(model_dir: Path, repeats: int, env: dict[str, str]) -> dict[str, tuple[float, float, float]]:
    """Median init wall and CPU seconds and the largest peak RSS MB, bare onnxruntime against the Lambda handler,
    taking turns.
    The bare session loads the file the handler loads (the optimised graph when the folder ships one)."""
    from mlfn.runtime.model import choose_model_file
    from mlfn.runtime.spec import load_spec

    model = choose_model_file(load_spec(model_dir))
    variants = {
        f"bare onnxruntime session ({model.name})": INIT_TIMER.format(
            f"import onnxruntime; onnxruntime.InferenceSession({str(model)!r}, providers=['CPUExecutionProvider'])"),
        "mlfn Lambda handler init": INIT_TIMER.format("import mlfn.runtime.lambda_handler"),
    }
    seen: dict[str, list[tuple[float, float, float]]] = {k: [] for k in variants}
    run_env = {**env, "MLFN_MODEL_DIR": str(model_dir)}
    for round_ in range(repeats + 1):  # round 0 warms the bytecode and page caches, untimed
        for label, code in variants.items():
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env,
                                  timeout=600, check=True)
            seconds, cpu, peak = map(float, done.stdout.strip().splitlines()[-1].split())
            if round_:
                seen[label].append((seconds, cpu, peak))
    return {k: (statistics.median(s for s, _, _ in v), statistics.median(c for _, c, _ in v), max(p for *_, p in v))
            for k, v in seen.items()}


def lambda_memory_mb(peak_rss_mb: float) -> int:
    from mlfn.cli.packaging.optimize import lambda_memory_needed

    return lambda_memory_needed(peak_rss_mb)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=400,
                        help="weights to generate, MB (default 400; whole layers of 67 MB, at least one)")
    parser.add_argument("--base", help="runtime base, as for `mlfn build --base` (default: what mlfn build finds)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh interpreters per init variant")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temp folder, removed)")
    parser.add_argument("--no-optimize", action="store_true", help="skip the `mlfn build --optimize` round")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="mlfn-large-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFN_HOME": os.environ.get("MLFN_HOME", str(ROOT / ".mlfn")), "PYTHONUNBUFFERED": "1"}
    base = ["--base", args.base] if args.base else []
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; work folder {work}")
    registry, host = start_registry(work / "registry")
    try:
        model_dir = work / "src" / "bench-large"
        started = time.perf_counter()
        write_folder(model_dir, args.mb)
        size = (model_dir / "model.onnx").stat().st_size
        print(f"generated model.onnx {size / 1e6:.1f} MB in {time.perf_counter() - started:.1f}s")

        out, target = work / "image", f"{host}/bench/large"
        build = ["build", str(model_dir), *base, "--out", str(out)]
        push = ["push", f"{out}:bench-large", "--to", target]
        steps: list[tuple[str, list[str], Any]] = [
            ("build (cold)", build, None), ("build (unchanged: layer cache)", build, None),
            ("push (first)", push, None), ("push (nothing changed)", push, None),
            ("build (only the hook changed)", build, lambda: (model_dir / "hooks.py").write_text(
                HOOKS.format(version="v2"))),
            ("push (only the hook changed)", push, None),
            ("build (only the model changed)", build, lambda: write_model(model_dir, args.mb, reseed_layer=0)),
            ("push (only the model changed)", push, None),
        ]
        if not args.no_optimize:
            steps.append(("build --optimize", [*build[:-1], str(work / "image-optimized"), "--optimize"], None))
        results: dict[str, dict[str, Any]] = {}
        print(f"\n{'step':34} {'wall s':>7} {'CPU s':>6} {'peak RSS MB':>12} {'result':>40}")
        for label, argv, before in steps:
            if before is not None:
                before()
            result, seconds, peak, cpu = mlfn(argv, env)
            results[label] = result
            if argv[0] == "build":
                total, count = image_bytes(Path(result["layout"]))
                what = (f"image {total / 1e6:.1f} MB ({count} layers); model layers "
                        + " + ".join(f"{la['size'] / 1e6:.1f}" for la in result["layers"]) + " MB")
            else:
                what = f"{len(result['uploaded'])} blob(s), {result['bytes_uploaded'] / 1e6:.3f} MB uploaded"
            print(f"{label:34} {seconds:7.1f} {cpu:6.1f} {peak:12.0f} {what:>40}")
        if "build --optimize" in results:
            print(f"--optimize profile: {json.dumps(results['build --optimize'].get('profile'))}")
        changed, optimized = results["build (only the model changed)"], results.get("build --optimize")

        for label, result in [("image", changed), *([("image with --optimize", optimized)] if optimized else [])]:
            folder = unpack_model(result, work / f"unpacked-{label.replace(' ', '-')}")
            inits = init_times(folder, args.repeats, env)
            print(f"\nLambda init, {label} ({', '.join(sorted(p.name for p in folder.iterdir()))}); "
                  f"median of {args.repeats}")
            print(f"{'':44} {'init s':>7} {'CPU s':>6} {'peak RSS MB':>12} {'Lambda MB':>10}")
            for name, (seconds, cpu, peak) in inits.items():
                print(f"{name:44} {seconds:7.2f} {cpu:6.2f} {peak:12.0f} {lambda_memory_mb(peak):10d}")
            bare, handler = (v[0] for v in inits.values())
            print(f"handler init / bare: {handler / bare:.2f}x")
        print(f"\nload average {os.getloadavg()[0]:.1f}; this process peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    finally:
        registry.terminate()
        registry.wait(10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
