"""A model directory read into one immutable `ModelSpec`: the source of truth every stage reads.

A folder holding `model.onnx` alone is valid; an optional `mlfn.toml` overrides and adds settings
(see `mlfn.runtime.settings` and docs/model-directory.md). Anything wrong raises `SpecError` with one
message naming the file, the field and what was expected.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tomllib
import types
import typing
from functools import cached_property
from pathlib import Path
from typing import Any

from .dtypes import DType, from_onnx
from .errors import SpecError
from .onnx_signature import Dim, OnnxFormatError, OnnxType, OnnxValue, read_signature
from .record import fields, is_record, record, replace
from .settings import Settings

CONFIG_FILE = "mlfn.toml"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,46}[a-z0-9]$")
STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,15}$")


@record
class TensorSpec:
    """One input or output of the model."""

    name: str
    kind: str  # "tensor", or for non-tensor outputs "sequence", "map", "optional", ...
    dtype: DType | None  # element type of a tensor; None for non-tensors
    shape: tuple[Dim, ...] | None  # None: rank unknown; a str or None dimension is dynamic

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def has_batch_dim(self) -> bool:
        """The first dimension is dynamic, so requests can be stacked along it."""
        return bool(self.shape) and not isinstance(self.shape[0], int)  # type: ignore[index]

    def describe(self) -> str:
        """`float32[batch, 4]`-style text for messages and `mlfn validate`."""
        if self.dtype is None:
            return self.kind
        if self.shape is None:
            return f"{self.dtype.name}[...]"
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype.name}[{dims}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "datatype": self.dtype.v2 if self.dtype else None,
            "dtype": self.dtype.name if self.dtype else None,
            "shape": None if self.shape is None else [-1 if not isinstance(d, int) else d for d in self.shape],
        }


@record
class ModelSpec:
    """Everything mlfn knows about one model directory."""

    directory: Path
    settings: Settings
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opsets: dict[str, int]
    producer: str

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def target(self) -> str:
        return self.settings.target

    @property
    def model_path(self) -> Path:
        return self.directory / self.settings.model

    @property
    def hooks_path(self) -> Path | None:
        return self.directory / self.settings.hooks if self.settings.hooks else None

    @cached_property
    def model_bytes(self) -> int:
        return self.model_path.stat().st_size

    @property
    def batchable(self) -> bool:
        """Every input and tensor output has a dynamic first dimension, so requests can be stacked."""
        tensors = self.inputs + tuple(o for o in self.outputs if o.kind == "tensor")
        return bool(self.inputs) and all(t.has_batch_dim for t in tensors)

    def with_target(self, target: str) -> ModelSpec:
        """This spec deployed to another target (`mlfn deploy --target`): every other setting is the folder's."""
        return self if target == self.target else replace(self, settings=replace(self.settings, target=target))

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def signature_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
        }


def _tensor_spec(value: OnnxValue, model_file: str) -> TensorSpec:
    typ: OnnxType = value.type
    if typ.kind == "tensor":
        try:
            dtype = from_onnx(typ.elem_type)
        except ValueError as exc:
            raise SpecError(model_file, value.name, "a supported tensor element type", str(exc)) from None
        return TensorSpec(value.name, "tensor", dtype, typ.shape)
    return TensorSpec(value.name, typ.kind, None, None)


# ---------------------------------------------------------------- settings from TOML


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if is_record(tp):
        return "a table"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, where: str, meta: Any) -> Any:
    """Check one TOML value against the field's type and limits; return it in the field's type."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):  # pragma: no cover - no optional fields today
        tp = typing.get_args(tp)[0]
        origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, list):
            raise SpecError(CONFIG_FILE, where, _type_name(tp), repr(value))
        inner = typing.get_args(tp)[0]
        return tuple(_convert(v, inner, f"{where}[{i}]", {}) for i, v in enumerate(value))
    if is_record(tp):
        if not isinstance(value, dict):
            raise SpecError(CONFIG_FILE, where, "a table", repr(value))
        return _build(tp, value, where)  # type: ignore[arg-type]
    ok = (
        isinstance(value, bool)
        if tp is bool
        else isinstance(value, (int, float)) and not isinstance(value, bool)
        if tp is float
        else isinstance(value, tp) and not isinstance(value, bool)
    )
    if not ok:
        raise SpecError(CONFIG_FILE, where, _type_name(tp), f"{value!r} ({type(value).__name__})")
    if tp is float:
        value = float(value)
    if "choices" in meta and value not in meta["choices"]:
        raise SpecError(CONFIG_FILE, where, "one of " + ", ".join(map(str, meta["choices"])), repr(value))
    if ("min" in meta and value < meta["min"]) or ("max" in meta and value > meta["max"]):
        bounds = f"from {meta.get('min', '-inf')} to {meta.get('max', 'inf')}"
        raise SpecError(CONFIG_FILE, where, f"a value {bounds}", repr(value))
    return value


def _build(cls: type[Any], table: dict[str, Any], prefix: str = "") -> Any:
    by_key = {f.metadata.get("toml", f.name): f for f in fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(table) - set(by_key))
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise SpecError(CONFIG_FILE, where, "one of the known keys: " + ", ".join(sorted(by_key)), "unknown key")
    kwargs = {}
    for key, value in table.items():
        f = by_key[key]
        where = f"{prefix}.{key}" if prefix else key
        kwargs[f.name] = _convert(value, hints[f.name], where, f.metadata)
    return cls(**kwargs)


def _check_consistency(s: Settings) -> None:
    """Cross-field rules the types alone cannot say."""
    lam, sm, ecs = s.lambda_, s.sagemaker, s.ecs
    pairs = (
        ("lambda.provisioned_min", lam.provisioned_min, "lambda.provisioned_max", lam.provisioned_max),
        ("sagemaker.min_instances", sm.min_instances, "sagemaker.max_instances", sm.max_instances),
        ("sagemaker.min_copies", sm.min_copies, "sagemaker.max_copies", sm.max_copies),
        ("ecs.min_tasks", ecs.min_tasks, "ecs.max_tasks", ecs.max_tasks),
    )
    for low_name, low, high_name, high in pairs:
        if low > high:
            raise SpecError(CONFIG_FILE, low_name, f"at most {high_name} ({high})", str(low))
    for i, sched in enumerate(lam.schedules):
        if sched.min > sched.max:
            raise SpecError(CONFIG_FILE, f"lambda.schedules[{i}].min", f"at most max ({sched.max})", str(sched.min))
        if not sched.cron.startswith(("cron(", "rate(", "at(")):
            raise SpecError(CONFIG_FILE, f"lambda.schedules[{i}].cron", "cron(...), rate(...) or at(...)",
                            repr(sched.cron))
    if s.gpu and s.target == "lambda":
        raise SpecError(CONFIG_FILE, "gpu", "target sagemaker or ecs: Lambda has no GPUs", "target = 'lambda'")
    if s.target == "sagemaker" and sm.serverless and (s.gpu or sm.gpus_per_copy):
        raise SpecError(CONFIG_FILE, "sagemaker.serverless", "false for a GPU model: serverless is CPU only",
                        "true")
    if lam.snapstart:
        _check_snapstart(lam)
    _check_rollout_metrics(s.rollout.metrics)
    if lam.reserved_concurrency != -1 and lam.provisioned_max > lam.reserved_concurrency:
        raise SpecError(CONFIG_FILE, "lambda.provisioned_max",
                        f"at most lambda.reserved_concurrency ({lam.reserved_concurrency})", str(lam.provisioned_max))
    _check_batch(s)


def _check_batch(s: Settings) -> None:
    """`[batch]` against the engine that runs it: a Lambda function's reserved concurrency bounds the map's
    concurrency; Batch Transform refuses MaxConcurrentTransforms x MaxPayloadInMB above 100 MB."""
    batch, reserved = s.batch, s.lambda_.reserved_concurrency
    if batch.state_machine and not batch.bucket:
        raise SpecError(CONFIG_FILE, "batch.bucket", "the S3 bucket the batch state machine reads and writes "
                        "(batch.state_machine = true)", "none")
    if s.target == "lambda" and reserved != -1 and batch.concurrency > reserved:
        raise SpecError(CONFIG_FILE, "batch.concurrency", f"at most lambda.reserved_concurrency ({reserved})",
                        str(batch.concurrency))
    if s.target != "lambda" and batch.concurrency and batch.concurrency * batch.max_payload_mb > 100:
        raise SpecError(CONFIG_FILE, "batch.concurrency",
                        f"at most {100 // batch.max_payload_mb} with batch.max_payload_mb = {batch.max_payload_mb} "
                        "(Batch Transform: concurrency x max_payload_mb at most 100 MB)", str(batch.concurrency))


_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_PERCENTILE = re.compile(r"p(\d{1,2}(\.\d+)?|100)")


def _check_rollout_metrics(metrics: tuple[Any, ...]) -> None:
    """A `[[rollout.metrics]]` entry names a metric, its dimensions as Name=Value and a CloudWatch statistic."""
    for i, m in enumerate(metrics):
        where = f"rollout.metrics[{i}]"
        for key in ("namespace", "metric"):
            if not getattr(m, key).strip():
                raise SpecError(CONFIG_FILE, f"{where}.{key}", "a non-empty string", '""')
        for j, dim in enumerate(m.dimensions):
            name, eq, value = dim.partition("=")
            if not (eq and name.strip() and value.strip()):
                raise SpecError(CONFIG_FILE, f"{where}.dimensions[{j}]", "Name=Value", repr(dim))
        if m.statistic not in _STATISTICS and not _PERCENTILE.fullmatch(m.statistic):
            raise SpecError(CONFIG_FILE, f"{where}.statistic", "one of " + ", ".join(_STATISTICS) + " or pNN",
                            repr(m.statistic))


def _check_snapstart(lam: Any) -> None:
    """What Lambda SnapStart does not support ("Improving startup performance with Lambda SnapStart": provisioned
    concurrency, Amazon EFS, ephemeral storage over 512 MB). mlfn mounts no EFS, so that one cannot arise."""
    if lam.provisioned_max:  # at least provisioned_min, checked before
        raise SpecError(CONFIG_FILE, "lambda.snapstart",
                        f"false with provisioned concurrency (lambda.provisioned_max = {lam.provisioned_max}): "
                        "Lambda SnapStart does not support provisioned concurrency", "true")
    if lam.ephemeral_storage_mb > 512:
        raise SpecError(CONFIG_FILE, "lambda.snapstart",
                        "false with lambda.ephemeral_storage_mb over 512: Lambda SnapStart does not support "
                        "ephemeral storage over 512 MB", f"true (ephemeral_storage_mb = {lam.ephemeral_storage_mb})")


def _default_name(directory: Path) -> str:
    """The folder's name made a valid `name` (NAME_PATTERN): a build writes it into the image's mlfn.toml."""
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")
    if len(name) < 2 or not name[0].isalpha():
        name = f"model-{name}".strip("-")
    return name[:48].rstrip("-")


def named_config(directory: Path, name: str) -> str | None:
    """The folder's `mlfn.toml` text with `name` set, for a copy of the folder that must keep its name under another
    folder name (an image's /opt/mlfn/model, the emulator's unpacked contents); None when the file names it already.

    The name defaults to the folder's name, which a copy does not keep: `mlfn build` writes this text into the image.
    """
    config = directory / CONFIG_FILE
    text = config.read_text(encoding="utf-8") if config.exists() else ""
    table = tomllib.loads(text)
    if table.get("name"):
        return None
    line = f'name = "{name}"  # the model folder\'s name, written by mlfn build'
    if "name" in table:  # `name = ""`: the first top-level key of that name (tables come after top-level keys)
        text = re.sub(r"""(?m)^[ \t]*name[ \t]*=[ \t]*(""|'')[ \t]*(#.*)?$""", line, text, count=1)
    else:
        text = f"{line}\n{text}"
    if tomllib.loads(text).get("name") != name:
        raise SpecError(CONFIG_FILE, "name", f"a top-level name mlfn build can set to {name!r}", "name = \"\"")
    return text


def _inside(directory: Path, relative: str, field_name: str) -> Path:
    """Resolve a path named in the config; refuse one that leaves the folder (directly or by symlink)."""
    root = directory.resolve()
    target = (directory / relative).resolve()
    if not target.is_relative_to(root):
        raise SpecError(CONFIG_FILE, field_name, "a file inside the model directory", relative)
    return target


def kind_of(path: Path) -> str:
    """What is at `path`, in words, for a message saying it is not the file expected there."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return "a symlink loop" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a file")]
    return next((word for test, word in kinds if test(mode)), "not a regular file")


def _link_target(path: Path, rel: Path) -> Path:
    """Where a symlink in the folder leads; a loop (or a link through one) is refused, a dangling link is judged
    by where it points."""
    try:
        target = path.resolve()
    except RuntimeError:  # Python 3.11's resolve() on a loop
        target = None
    if target is None or kind_of(path) == "a symlink loop":
        raise SpecError(str(rel), "-", "a file inside the model directory", "a symlink loop")
    return target


def check_files(directory: Path) -> None:
    """Refuse symlinks that point out of the folder or loop: the image must hold exactly the folder."""
    root = directory.resolve()
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            rel = path.relative_to(directory)
            target = _link_target(path, rel)
            if not target.is_relative_to(root):
                raise SpecError(str(rel), "-", "a file inside the model directory", f"a symlink to {target}")


def load_settings(directory: Path) -> Settings:
    """Read and validate `mlfn.toml` (defaults when absent)."""
    config = directory / CONFIG_FILE
    table: dict[str, Any] = {}
    if config.exists() or config.is_symlink():
        if not config.is_file():  # a FIFO would block the read
            raise SpecError(CONFIG_FILE, "-", "a TOML file", kind_of(config))
        try:
            table = tomllib.loads(config.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(CONFIG_FILE, "-", "valid TOML", str(exc)) from None
    settings: Settings = _build(Settings, table)
    if not settings.name:
        settings = replace(settings, name=_default_name(directory))
    elif not NAME_PATTERN.match(settings.name):
        raise SpecError(CONFIG_FILE, "name", "2 to 48 lowercase letters, digits and dashes, starting with a letter",
                        repr(settings.name))
    for i, stage in enumerate(settings.stages):
        if not STAGE_PATTERN.match(stage):
            raise SpecError(CONFIG_FILE, f"stages[{i}]", "1 to 16 lowercase letters and digits", repr(stage))
    _check_consistency(settings)
    return settings


def load_spec(model_dir: str | Path) -> ModelSpec:
    """Read and validate a model directory."""
    directory = Path(model_dir)
    if not directory.is_dir():
        raise SpecError(str(directory), "-", "a model directory holding model.onnx", "no such directory")
    check_files(directory)
    settings = load_settings(directory)
    model_path = _inside(directory, settings.model, "model")
    if not model_path.is_file():
        raise SpecError(settings.model, "-", "an ONNX model file", kind_of(model_path))
    try:
        signature = read_signature(model_path)
    except (OnnxFormatError, OSError) as exc:
        raise SpecError(settings.model, "-", "a valid ONNX model", f"unreadable: {exc}") from None
    if settings.hooks:
        hooks = _inside(directory, settings.hooks, "hooks")
        if not hooks.is_file() or hooks.suffix != ".py":
            found = repr(settings.hooks) + ("" if hooks.is_file() else f" ({kind_of(hooks)})")
            raise SpecError(CONFIG_FILE, "hooks", "a .py file in the model directory", found)
    inputs = tuple(_tensor_spec(v, settings.model) for v in signature.inputs)
    outputs = tuple(_tensor_spec(v, settings.model) for v in signature.outputs)
    for t in inputs:
        if t.kind != "tensor":
            raise SpecError(settings.model, t.name, "tensor inputs", f"a {t.kind} input")
    return ModelSpec(directory.resolve(), settings, inputs, outputs, signature.opsets, signature.producer)
