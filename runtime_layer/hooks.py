"""A model directory's optional pre/post-processing module (`hooks = "hooks.py"` in mlfn.toml).

The module may define either or both of:

    def preprocess(body: bytes, content_type: str) -> Mapping[str, np.ndarray] | None: ...
        # feeds by input name; None lets mlfn decode the body itself (JSON, CSV)
    def postprocess(outputs: dict[str, Any]) -> Any: ...
        # outputs by name -> anything JSON can hold (numpy arrays allowed)

Hooks run on SageMaker `/invocations` and KServe v1 `:predict`, never on v2 `infer` (a tensor protocol).
A `ValueError` raised by a hook is the caller's fault (400 naming the hook); anything else is a 500.

The model folder's own packages (its requirements.txt, built into /opt/mlfn/deps) are importable by the hooks:
`MLFN_DEPS_DIR` names that folder, which goes on `sys.path` (after the runtime's own packages) before the import.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import site
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError, RequestError, SpecError
from .record import record

Preprocess = Callable[[bytes, str], "Mapping[str, np.ndarray] | None"]
Postprocess = Callable[[dict[str, Any]], Any]
_ARITY = {"preprocess": 2, "postprocess": 1}
DEPS_ENV = "MLFN_DEPS_DIR"


@record
class Hooks:
    """The callables a hooks module defines (either may be None)."""

    file: str  # the module's file name, for messages
    preprocess_fn: Preprocess | None = None
    postprocess_fn: Postprocess | None = None

    def preprocess(self, body: bytes, content_type: str) -> dict[str, Any] | None:
        """Feeds from the hook, or None to fall back to mlfn's own decoding."""
        if self.preprocess_fn is None:
            return None
        try:
            feeds = self.preprocess_fn(body, content_type)
        except ValueError as exc:
            raise RequestError(f"preprocess in {self.file} refused the request: {exc}",
                               hook="preprocess", received=content_type) from None
        except Exception as exc:
            raise ModelError(f"preprocess in {self.file} failed: {type(exc).__name__}: {exc}") from exc
        if feeds is None:
            return None
        if not isinstance(feeds, Mapping) or not all(isinstance(k, str) for k in feeds):
            raise ModelError(f"preprocess in {self.file} returned {type(feeds).__name__}; "
                             "expected a mapping of input name to numpy array, or None")
        return dict(feeds)

    def postprocess(self, outputs: dict[str, Any]) -> Any:
        if self.postprocess_fn is None:
            return outputs
        try:
            return self.postprocess_fn(outputs)
        except ValueError as exc:
            raise RequestError(f"postprocess in {self.file} refused the result: {exc}", hook="postprocess") from None
        except Exception as exc:
            raise ModelError(f"postprocess in {self.file} failed: {type(exc).__name__}: {exc}") from exc


NO_HOOKS = Hooks(file="")


def _check_callable(module: Any, name: str, file: str) -> Any:
    fn = getattr(module, name, None)
    if fn is None:
        return None
    if not callable(fn):
        raise SpecError(file, name, f"a function taking {_ARITY[name]} argument(s)", type(fn).__name__)
    try:
        inspect.signature(fn).bind(*range(_ARITY[name]))
    except TypeError:
        raise SpecError(file, name, f"a function taking {_ARITY[name]} argument(s)",
                        f"{name}{inspect.signature(fn)}") from None
    except ValueError:  # pragma: no cover - builtins without a signature
        pass
    return fn


def add_dependencies() -> None:
    """Put the model's own packages (`MLFN_DEPS_DIR`, when set and present) on sys.path, .pth files included."""
    folder = os.environ.get(DEPS_ENV, "")
    if folder and os.path.isdir(folder) and folder not in sys.path:
        site.addsitedir(folder)


def load_hooks(path: Path | None) -> Hooks:
    """Import the hooks module from its file; any failure is a SpecError naming the file."""
    if path is None:
        return NO_HOOKS
    add_dependencies()
    file = path.name
    module_name = f"mlfn_model_hooks_{abs(hash(str(path)))}"
    try:
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError("not a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module  # lets dataclasses and pickling inside the module resolve it
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise SpecError(file, "-", "a Python module that imports", f"{type(exc).__name__}: {exc}") from None
    pre = _check_callable(module, "preprocess", file)
    post = _check_callable(module, "postprocess", file)
    if pre is None and post is None:
        raise SpecError(file, "-", "a function named preprocess or postprocess", "neither")
    return Hooks(file, pre, post)
