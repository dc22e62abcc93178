"""Train and export the models bundled under functions/, from data that ships inside scikit-learn.

    .venv/bin/python functions/build_models.py [--out DIR]

Writes `<DIR>/iris/model.onnx`, `<DIR>/digits/model.onnx` and `<DIR>/digits/examples/*.png` (DIR defaults to
this folder) and prints each model's accuracy on held-out data. Nothing is downloaded; seeds are fixed, so a
rebuild gives the same models. When DIR is not this folder, the hand-written files of each function
(`mlfn.toml`, `hooks.py`, `example.json`) are copied too, so every `<DIR>/<name>` is a complete model directory.

The tests import this file for its data splits, its training functions and its PNG encoder.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import shutil
import struct
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0
OPSETS = {"": 17, "ai.onnx.ml": 3}
HAND_WRITTEN = ("mlfn.toml", "hooks.py", "example.json", "requirements.txt")
DIGIT_EXAMPLES = {0: ("gray", 32), 3: ("rgb", 32), 7: ("rgba", 48)}  # digit: (colour type, side in pixels)


@dataclass(frozen=True)
class Split:
    """A dataset split once, with a fixed seed, into training and held-out rows."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def _split(x: np.ndarray, y: np.ndarray, test_size: float) -> Split:
    from sklearn.model_selection import train_test_split

    parts = train_test_split(x.astype(np.float32), y, test_size=test_size, random_state=SEED, stratify=y)
    return Split(*parts)


def iris_split() -> Split:
    """Iris measurements (cm) with the species names as labels; 30% held out."""
    from sklearn.datasets import load_iris

    data = load_iris()
    return _split(data.data, data.target_names[data.target], 0.3)


def digits_split() -> Split:
    """8x8 handwritten digits (ink 0..16 per pixel, flattened to 64 values); 25% held out."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return _split(data.data, data.target, 0.25)


def _fit(model: Any, split: Split) -> Any:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one BLAS thread: the same sums in the same order on any machine, and no contention
        return model.fit(split.x_train, split.y_train)


def train_iris(split: Split) -> Any:
    """Standardize, then multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return _fit(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=SEED)), split)


def train_digits(split: Split) -> Any:
    """Standardize, then a one-hidden-layer perceptron (64 ReLU units)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=SEED)
    return _fit(make_pipeline(StandardScaler(), mlp), split)


def to_onnx(model: Any, name: str, input_name: str, features: int, *, zipmap: bool, about: dict[str, str]) -> bytes:
    """Convert a fitted scikit-learn classifier to ONNX with a float32 `[batch, features]` input."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(model): {"zipmap": zipmap}}
    onx = convert_sklearn(
        model, initial_types=[(input_name, FloatTensorType([None, features]))], target_opset=OPSETS, options=options
    )
    return pinned(onx, name, about)


def pinned(onx: Any, name: str, about: dict[str, str]) -> bytes:
    """A converted model's bytes with a fixed graph name, sorted opsets and `about` as its doc and metadata."""
    # skl2onnx names the graph with a random UUID and lists opsets in no fixed order: fix both for identical builds
    onx.graph.name = name
    opsets = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    for domain, version in opsets:
        onx.opset_import.add(domain=domain, version=version)
    onx.doc_string = about["description"]
    for key, value in about.items():
        if key == "description":
            continue
        entry = onx.metadata_props.add()
        entry.key, entry.value = key, value
    return bytes(onx.SerializeToString())


# ---------------------------------------------------------------- a small PNG encoder (stdlib + numpy)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type: gray, gray+alpha, RGB, RGBA


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filter_row(kind: int, row: np.ndarray, above: np.ndarray, bpp: int) -> np.ndarray:
    """One scanline filtered with PNG filter `kind` (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    x, b = row.astype(np.int16), above.astype(np.int16)
    a = np.concatenate([np.zeros(bpp, np.int16), x[:-bpp]])
    c = np.concatenate([np.zeros(bpp, np.int16), b[:-bpp]])
    predictor = {0: np.zeros_like(x), 1: a, 2: b, 3: (a + b) >> 1, 4: _paeth(a, b, c)}[kind]
    return np.asarray((x - predictor) & 0xFF, dtype=np.uint8)


def encode_png(pixels: np.ndarray, *, filters: int | list[int] | None = None, idat_size: int = 1 << 16) -> bytes:
    """Encode 8-bit pixels, `(h, w)` gray or `(h, w, c)` with c in 1..4, as a non-interlaced PNG.

    `filters`: one filter type for every row, a list with one per row, or None to pick per row the filter
    with the smallest sum of absolute values (libpng's heuristic). The image data is split into IDAT
    chunks of `idat_size` bytes.
    """
    image = pixels if pixels.ndim == 3 else pixels[:, :, None]
    if image.dtype != np.uint8 or image.shape[2] not in COLOR_TYPES:
        raise ValueError("expected uint8 pixels with 1 to 4 channels")
    height, width, bpp = image.shape
    rows = image.reshape(height, width * bpp)
    kinds = [filters] * height if isinstance(filters, int) else filters
    out, above = bytearray(), np.zeros(width * bpp, np.uint8)
    for y in range(height):
        if kinds is None:
            candidates = [filter_row(k, rows[y], above, bpp) for k in range(5)]
            kind = min(range(5), key=lambda k: int(np.abs(candidates[k].view(np.int8).astype(np.int32)).sum()))
            line = candidates[kind]
        else:
            kind = kinds[y]
            line = filter_row(kind, rows[y], above, bpp)
        out.append(kind)
        out += line.tobytes()
        above = rows[y]
    header = struct.pack(">IIBBBBB", width, height, 8, COLOR_TYPES[bpp], 0, 0, 0)
    data = zlib.compress(bytes(out), 9)
    idats = [_chunk(b"IDAT", data[i : i + idat_size]) for i in range(0, max(len(data), 1), idat_size)]
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + b"".join(idats) + _chunk(b"IEND", b"")


def digit_picture(ink: np.ndarray, color: str, side: int) -> np.ndarray:
    """Draw an 8x8 digit (ink 0..16) as a `side`-pixel picture of dark ink on white paper.

    `gray`: black ink; `rgb`: blue ink; `rgba`: black ink on a transparent background.
    """
    fine = ink.reshape(8, 8) / 16.0
    scale = side / 8
    index = np.minimum((np.arange(side) / scale).astype(int), 7)  # nearest neighbour up-sampling
    cover = fine[index][:, index]
    if color == "gray":
        return np.asarray(np.rint(255 * (1 - cover)), dtype=np.uint8)
    if color == "rgb":
        pen = np.array([25, 40, 140], np.float64)
        return np.asarray(np.rint(255 * (1 - cover[..., None]) + pen * cover[..., None]), dtype=np.uint8)
    alpha = np.rint(255 * cover).astype(np.uint8)
    return np.dstack([np.zeros((side, side, 3), np.uint8), alpha])


# ---------------------------------------------------------------- the functions


def _accuracy(predicted: np.ndarray, expected: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(expected)))


@dataclass(frozen=True)
class Recipe:
    """How one bundled model is made: its data, its training and the ONNX signature it gets."""

    name: str
    split: Callable[[], Split]
    train: Callable[[Split], Any]
    input_name: str
    features: int
    zipmap: bool  # skl2onnx's ZipMap: probabilities as a list of {class: p} maps instead of a tensor
    label_output: str
    description: str
    dataset: str


IRIS = Recipe(
    "iris", iris_split, train_iris, "input", 4, True, "output_label",
    "Iris species from sepal and petal length and width (cm); scikit-learn logistic regression.",
    "scikit-learn load_iris, 30% held out (stratified, seed 0)",
)
DIGITS = Recipe(
    "digits", digits_split, train_digits, "pixels", 64, False, "label",
    "Handwritten digit 0-9 from an 8x8 image (ink 0..16 per pixel, row by row); scikit-learn MLP.",
    "scikit-learn load_digits, 25% held out (stratified, seed 0)",
)


@dataclass(frozen=True)
class Built:
    recipe: Recipe
    split: Split
    model: Any  # the fitted scikit-learn pipeline
    session: Any  # an onnxruntime session on the exported bytes
    accuracy: float


def export(recipe: Recipe, out: Path) -> Built:
    """Train, convert, check the ONNX model agrees with scikit-learn, write `out/model.onnx`."""
    import onnxruntime as ort

    split = recipe.split()
    model = recipe.train(split)
    predicted = model.predict(split.x_test)
    accuracy = _accuracy(predicted, split.y_test)
    about = {"description": recipe.description, "dataset": recipe.dataset, "held_out_accuracy": f"{accuracy:.4f}",
             "classes": ",".join(str(c) for c in model.classes_)}
    blob = to_onnx(model, recipe.name, recipe.input_name, recipe.features, zipmap=recipe.zipmap, about=about)
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    if _accuracy(session.run([recipe.label_output], {recipe.input_name: split.x_test})[0], predicted) != 1.0:
        raise SystemExit(f"{recipe.name}: the ONNX model disagrees with scikit-learn")
    (out / "model.onnx").write_bytes(blob)
    return Built(recipe, split, model, session, accuracy)


def build_iris(out: Path) -> float:
    return export(IRIS, out).accuracy


def _load_hooks(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlfn_digits_hooks", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_digits(out: Path) -> float:
    """The model, then example uploads: held-out digits it gets right, drawn as PNGs and checked through hooks.py."""
    built = export(DIGITS, out)
    split, hooks = built.split, _load_hooks(out / "hooks.py")
    examples = out / "examples"
    examples.mkdir(exist_ok=True)
    predicted = built.model.predict(split.x_test)
    for digit, (color, side) in DIGIT_EXAMPLES.items():
        row = next(i for i, (y, p) in enumerate(zip(split.y_test, predicted, strict=True)) if y == p == digit)
        png = encode_png(digit_picture(split.x_test[row], color, side))
        label = int(built.session.run(["label"], hooks.preprocess(png, "image/png"))[0][0])
        if label != digit:
            raise SystemExit(f"digits: example {digit}.png is read through hooks.py as {label}")
        (examples / f"{digit}.png").write_bytes(png)
    return built.accuracy


# ---------------------------------------------------------------- the text model: what a sentence about code is about

# topic -> the standard-library modules whose docstrings teach it: the training text ships with Python itself
TOPICS = {
    "files and paths": ("os.path", "pathlib", "shutil", "glob", "fnmatch", "tempfile", "filecmp", "stat", "zipfile",
                        "tarfile", "io", "fileinput", "gzip", "bz2", "lzma"),
    "networking": ("socket", "http.client", "http.server", "urllib.request", "urllib.parse", "smtplib", "ftplib",
                   "ssl", "ipaddress", "socketserver", "imaplib", "poplib", "http.cookiejar", "selectors"),
    "math and numbers": ("math", "cmath", "decimal", "fractions", "statistics", "random", "numbers"),
    "text processing": ("re", "string", "textwrap", "difflib", "unicodedata", "html", "html.parser", "codecs"),
    "dates and time": ("datetime", "time", "calendar", "zoneinfo"),
    "concurrency": ("threading", "multiprocessing", "concurrent.futures", "queue", "asyncio", "subprocess", "sched"),
}
MIN_WORDS = 6  # shorter docstring paragraphs ("Return self.") say nothing about a topic


def _paragraphs(doc: object) -> list[str]:
    """The paragraphs of a docstring of MIN_WORDS words or more, whitespace collapsed, doctests left out."""
    if not isinstance(doc, str):
        return []
    paragraphs = (" ".join(p.split()) for p in doc.split("\n\n"))
    return [p for p in paragraphs if len(p.split()) >= MIN_WORDS and not p.startswith(">>>")]


def module_docstrings(module_name: str) -> list[str]:
    """The docstring paragraphs of a module, of its public classes and functions, and of their public methods
    and properties (each object's own `__doc__`: inherited ones would teach the base class's topic)."""
    module = importlib.import_module(module_name)
    package = module_name.split(".")[0]
    objects: list[object] = [module]
    for name, value in sorted(vars(module).items()):
        home = getattr(value, "__module__", None) or ""
        if name.startswith("_") or not (inspect.isclass(value) or inspect.isroutine(value)):
            continue
        if home.split(".")[0] != package:  # imported from elsewhere: another module's topic
            continue
        objects.append(value)
        if inspect.isclass(value):
            objects += [member for key, member in sorted(vars(value).items())
                        if not key.startswith("_") and (inspect.isroutine(member) or isinstance(member, property))]
    seen: set[int] = set()
    texts = []
    for obj in objects:
        if id(obj) not in seen:
            seen.add(id(obj))
            texts += _paragraphs(obj.__doc__)
    return texts


def topics_split() -> Split:
    """Docstring paragraphs of the standard library labelled with their module's topic (a paragraph found under
    two topics is left out); 25% held out."""
    from sklearn.model_selection import train_test_split

    found: dict[str, set[str]] = {}
    for topic, modules in TOPICS.items():
        for module_name in modules:
            for text in module_docstrings(module_name):
                found.setdefault(text, set()).add(topic)
    pairs = [(text, next(iter(topics))) for text, topics in found.items() if len(topics) == 1]
    texts = np.array([t for t, _ in pairs], dtype=object)
    labels = np.array([label for _, label in pairs])
    parts = train_test_split(texts, labels, test_size=0.25, random_state=SEED, stratify=labels)
    return Split(*parts)


def train_topics(split: Split) -> Any:
    """TF-IDF of lower-cased words (two characters or more, in two paragraphs or more), then a linear classifier
    trained by stochastic gradient descent on the log loss (so it gives probabilities)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline

    return _fit(make_pipeline(TfidfVectorizer(min_df=2), SGDClassifier(loss="log_loss", alpha=3e-5,
                                                                       random_state=SEED)), split)


TOPICS_DESCRIPTION = ("What a sentence about programming is about: " + ", ".join(TOPICS)
                      + "; TF-IDF and a linear classifier learned from the docstrings of Python's standard library, "
                      "tokenized inside the ONNX graph.")
TOPICS_EXAMPLES = ["Open a TCP connection to the server and send the request headers",
                   "Round the number to two decimal places", "Wait until every worker thread has finished"]


def build_topics(out: Path) -> float:
    """Train, export with the tokenizer in the graph (a text input), check ONNX agrees with scikit-learn on the
    held-out paragraphs and on the example request."""
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    split = topics_split()
    model = train_topics(split)
    predicted = model.predict(split.x_test)
    accuracy = _accuracy(predicted, split.y_test)
    vectorizer, classifier = model.steps[0][1], model.steps[-1][1]
    # StringNormalizer lower-cases in a locale. onnxruntime's default, en_US.UTF-8, is missing where no language pack
    # is installed (the session then fails to load, as on the machine this was written on); the "C" locale always
    # exists, and the training text is English.
    options = {id(classifier): {"zipmap": False}, id(vectorizer): {"locale": "C"}}
    onx = convert_sklearn(model, initial_types=[("text", StringTensorType([None]))], target_opset=OPSETS,
                          options=options)
    about = {"description": TOPICS_DESCRIPTION,
             "dataset": f"docstring paragraphs of Python {sys.version_info.major}.{sys.version_info.minor}'s "
                        f"standard library ({len(split.y_train) + len(split.y_test)}), 25% held out "
                        "(stratified, seed 0)",
             "held_out_accuracy": f"{accuracy:.4f}", "classes": ",".join(str(c) for c in model.classes_)}
    blob = pinned(onx, "topics", about)
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    examples = np.array(TOPICS_EXAMPLES, dtype=object)
    for texts, expected in ((split.x_test, predicted), (examples, model.predict(examples))):
        if _accuracy(session.run(["label"], {"text": texts})[0], expected) != 1.0:
            raise SystemExit("topics: the ONNX model disagrees with scikit-learn")
    (out / "model.onnx").write_bytes(blob)
    return accuracy


BUILDERS: dict[str, Callable[[Path], float]] = {"iris": build_iris, "digits": build_digits, "topics": build_topics}


def build(out: Path) -> dict[str, float]:
    """Build every function into `out/<name>`; returns each model's held-out accuracy."""
    accuracies = {}
    for name, builder in BUILDERS.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        if folder.resolve() != (HERE / name).resolve():
            for file_name in HAND_WRITTEN:
                if (HERE / name / file_name).is_file():
                    shutil.copy2(HERE / name / file_name, folder / file_name)
        start = time.perf_counter()
        accuracies[name] = builder(folder)
        size = (folder / "model.onnx").stat().st_size
        print(f"{name}: held-out accuracy {accuracies[name]:.4f}, model.onnx {size:,} bytes, "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    return accuracies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to build <name>/ into (default: %(default)s)")
    args = parser.parse_args(argv)
    build(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
