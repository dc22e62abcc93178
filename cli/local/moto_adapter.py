"""The moto internals the emulator's control plane reaches into for the data plane, in one place.

- ECR: moto keeps only the size of an uploaded layer; `CompleteLayerUpload` here also stores its bytes, and
  `PutImage` the manifest and its tag, in the emulator's registry storage (`registry_storage`), so the data plane
  can run what a function's `ImageUri` names; `BatchCheckLayerAvailability` forgets a layer or image whose bytes are
  not there (another state directory), so a push sends it again.
- ECR: pushing an image with a tag another image holds moves the tag and leaves that image untagged (moto deletes
  it), so a function still running the previous image keeps it (what a rollback needs).
- Lambda: `delete_function` also forgets the emulator's Function URLs and provisioned concurrency (`lambda_api`).
- Lambda and SageMaker: every successful write request (`BaseResponse.call_action` of an action that is not a read
  or an invocation) is reported, once moto committed it, to the callback `notify_changes` sets (`change_notice`:
  the data plane applies it at once instead of at its next poll).

`install(state_dir)` applies them (idempotent); `check()` raises `MotoChanged` naming what a moto upgrade removed or
renamed, and tests/local_control/test_moto_adapter.py calls it, so such an upgrade fails loudly instead of silently
serving nothing.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moto.awslambda.models import LambdaBackend
from moto.core.responses import BaseResponse
from moto.ecr.models import ECRBackend

from .registry_storage import blob_path, store_blob, store_tag

# (owner, attribute, the parameters the emulator passes or reads) - what a moto upgrade must keep
REQUIRED: tuple[tuple[type, str, tuple[str, ...]], ...] = (
    (ECRBackend, "complete_layer_upload", ("repository_name", "upload_id", "layer_digests", "registry_id")),
    (ECRBackend, "_get_repository", ("name", "registry_id")),
    (ECRBackend, "put_image", ("repository_name", "image_manifest", "image_tag", "image_manifest_mediatype",
                               "digest")),
    (ECRBackend, "batch_check_layer_availability", ("repository_name", "layer_digests", "registry_id")),
    (LambdaBackend, "delete_function", ("function_name", "qualifier")),
    (BaseResponse, "call_action", ("self",)),
    (BaseResponse, "_get_action", ("self",)),
)


class MotoChanged(RuntimeError):
    """moto no longer has an internal the emulator patches."""


def check() -> None:
    """Raise `MotoChanged` unless every patched moto internal still has the shape the emulator relies on."""
    for owner, name, params in REQUIRED:
        target = getattr(owner, name, None)
        if not callable(target):
            raise MotoChanged(f"moto's {owner.__name__}.{name} is gone: the emulator's patch needs updating")
        have = set(inspect.signature(target).parameters)
        if not set(params) <= have:
            raise MotoChanged(f"moto's {owner.__name__}.{name} no longer takes {sorted(set(params) - have)}")
    if "self.service_name" not in inspect.getsource(BaseResponse.__init__) or \
            "self.method" not in inspect.getsource(BaseResponse.setup_class):
        raise MotoChanged("moto's BaseResponse no longer keeps service_name and method")
    import moto.ecr.models as ecr_models

    if "uploads" not in inspect.getsource(ecr_models.Repository.__init__) or not hasattr(
            ecr_models, "LayerUpload") or "layer_parts" not in inspect.getsource(ecr_models.LayerUpload):
        raise MotoChanged("moto's ECR no longer keeps uploads as Repository.uploads[id].layer_parts")


_originals: dict[str, Callable[..., Any]] = {}
_state: list[Path] = []  # the state directory whose registry storage receives layers (empty: none)


def set_state_dir(state: Path | None) -> None:
    _state[:] = [state] if state is not None else []


def _complete_layer_upload(self: ECRBackend, repository_name: str, upload_id: str, layer_digests: list[str],
                           registry_id: str | None = None) -> dict[str, Any]:
    repository = self._get_repository(repository_name, registry_id)
    upload = repository.uploads.get(upload_id)
    data = bytes(upload.layer_parts) if upload is not None else b""
    result: dict[str, Any] = _originals["complete_layer_upload"](
        self, repository_name, upload_id, layer_digests, registry_id)
    if _state and upload is not None:
        store_blob(_state[0], data)
    return result


def _put_image(self: ECRBackend, repository_name: str, image_manifest: str, image_tag: str,
               image_manifest_mediatype: str | None = None, digest: str | None = None) -> Any:
    repository = self.repositories.get(repository_name)
    before = list(repository.images) if repository is not None else []
    image = _originals["put_image"](self, repository_name, image_manifest, image_tag, image_manifest_mediatype, digest)
    for old in before:
        if repository is not None and old not in repository.images:  # its only tag moved: keep it, untagged
            old.image_tags, old.image_tag = [], None
            repository.images.insert(0, old)
    if _state:
        stored = store_blob(_state[0], image_manifest.encode())
        if image_tag:
            store_tag(_state[0], repository_name, image_tag, stored)
    return image


def _stored(state: Path, digest: str) -> bool:
    try:
        return blob_path(state, digest).is_file()
    except ValueError:
        return True


def _batch_check_layer_availability(self: ECRBackend, repository_name: str, layer_digests: list[str],
                                    registry_id: str | None = None) -> dict[str, Any]:
    if _state:  # a layer or image whose bytes are gone (another state directory) is not there: a push sends it again
        repository = self._get_repository(repository_name, registry_id)
        for digest in [d for d in repository.layers if not _stored(_state[0], d)]:
            del repository.layers[digest]
        repository.images = [image for image in repository.images if _stored(_state[0], image.image_digest)]
    result: dict[str, Any] = _originals["batch_check_layer_availability"](
        self, repository_name, layer_digests, registry_id)
    return result


def install(state: Path | None, delete_function: Callable[..., Any]) -> None:
    """Apply the patches (once) and send layers to `state`'s registry storage (None: keep none)."""
    check()
    set_state_dir(state)
    if not _originals:
        _originals["complete_layer_upload"] = ECRBackend.complete_layer_upload
        _originals["delete_function"] = LambdaBackend.delete_function
        _originals["put_image"] = ECRBackend.put_image
        _originals["batch_check_layer_availability"] = ECRBackend.batch_check_layer_availability
        ECRBackend.complete_layer_upload = _complete_layer_upload  # type: ignore[method-assign]
        ECRBackend.put_image = _put_image  # type: ignore[method-assign]
        ECRBackend.batch_check_layer_availability = _batch_check_layer_availability  # type: ignore[method-assign]
        LambdaBackend.delete_function = delete_function  # type: ignore[method-assign]


# the services whose writes change what the data plane serves (moto's names), and the actions that write nothing
NOTICED_SERVICES = ("awslambda", "sagemaker")
READ_PREFIXES = ("get_", "list_", "describe_", "search", "invoke", "batch_get", "query_")
_notify: list[Callable[[], object]] = []


def writes(service: str | None, method: str, action: str) -> bool:
    """Whether a request to moto's `service` with HTTP `method` and (snake_case) `action` may change what it holds."""
    return service in NOTICED_SERVICES and method not in ("GET", "HEAD") and not action.startswith(READ_PREFIXES)


def _call_action(self: BaseResponse) -> Any:
    result = _originals["call_action"](self)
    if _notify and int(result[0]) < 300:
        from moto.core.utils import camelcase_to_underscores

        try:
            action = camelcase_to_underscores(self._get_action() or "")
        except Exception:  # an action moto cannot name changes nothing it knows of
            action = "get_"
        if writes(self.service_name, self.method, action):
            _notify[0]()
    return result


def notify_changes(callback: Callable[[], object] | None) -> None:
    """Call `callback()` after every successful write to the Lambda or SageMaker API (None: stop)."""
    check()
    _notify[:] = [callback] if callback is not None else []
    if "call_action" not in _originals:
        _originals["call_action"] = BaseResponse.call_action
        BaseResponse.call_action = _call_action  # type: ignore[method-assign]


def moto_delete_function(backend: LambdaBackend, function_name: str, qualifier: str | None) -> None:
    """moto's own delete_function (before the emulator's patch)."""
    original = _originals.get("delete_function", LambdaBackend.delete_function)
    original(backend, function_name, qualifier)


# ---------------------------------------------------------------------- the control plane's state on disk

def _instantiated() -> list[Any]:
    from moto.core.base_backend import BackendDict

    return list(BackendDict._instances)  # the services that hold anything (moto's own bookkeeping)


def _reducers() -> dict[type, Callable[[Any], Any]]:
    """How to pickle what moto's backends hold that pickle cannot: locks and events (new ones), weak-value dicts
    (their items), defaultdicts whose factory is a lambda making an empty dict, list or defaultdict of those (the
    same factory without the lambda); any other lambda factory leaves its service out."""
    import collections
    import weakref

    def defaultdict_(d: collections.defaultdict[Any, Any]) -> Any:
        factory = d.default_factory
        if factory is not None and getattr(factory, "__name__", "") == "<lambda>":
            factory = _plain_factory(factory)  # moto's `lambda: {}` and `lambda: defaultdict(dict)`
        return collections.defaultdict, (factory, dict(d))

    lock_types = {type(threading.Lock()), type(threading.RLock())}
    reducers: dict[type, Callable[[Any], Any]] = {t: (lambda lock: (type(lock), ())) for t in lock_types}
    reducers[weakref.WeakValueDictionary] = lambda w: (weakref.WeakValueDictionary, (dict(w.items()),))
    reducers[collections.defaultdict] = defaultdict_
    reducers[threading.Event] = lambda e: (threading.Event, ())
    return reducers


def _plain_factory(factory: Callable[[], Any]) -> Callable[[], Any]:
    import collections
    import functools

    sample = factory()
    if type(sample) in (dict, list) and not sample:
        return type(sample)
    if isinstance(sample, collections.defaultdict) and not sample and sample.default_factory in (dict, list):
        return functools.partial(collections.defaultdict, sample.default_factory)
    raise TypeError(f"a defaultdict whose factory makes {type(sample).__name__}")


def save_state(path: Path) -> list[str]:
    """Write every moto backend that holds anything to `path` (one pickle, so references between services - a
    stack's resources and the functions they are - stay shared). Returns the services left out (not picklable)."""
    import copyreg
    import io
    import pickle

    snapshot = {(bd.backend.__module__, bd.backend.__qualname__): {a: dict(r) for a, r in bd.items()}
                for bd in _instantiated()}
    left_out: list[str] = []
    while True:
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = {**copyreg.dispatch_table, **_reducers()}
        try:
            pickler.dump(snapshot)
            pickle.loads(buffer.getvalue())  # what cannot be read back is no better than what cannot be written
            break
        except Exception:  # find the service that cannot be pickled, leave it out, try again
            culprit = next((k for k in snapshot if not _picklable(snapshot[k])), None)
            if culprit is None:
                raise
            left_out.append(culprit[0])
            del snapshot[culprit]
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return left_out


def _picklable(value: Any) -> bool:
    import copyreg
    import io
    import pickle

    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, **_reducers()}
    try:
        pickler.dump(value)
        pickle.loads(buffer.getvalue())
    except Exception:
        return False
    return True


def load_state(path: Path) -> int:
    """Put the backends saved in `path` back into moto (before its server answers); returns how many services."""
    import importlib
    import pickle

    from moto.core.base_backend import BackendDict

    if not path.is_file():
        return 0
    try:
        snapshot = pickle.loads(path.read_bytes())
    except Exception as exc:  # a moto upgrade since it was saved: start empty, keep the file for a look
        path.replace(path.with_suffix(".unreadable"))
        raise MotoChanged(f"the saved control-plane state cannot be read ({exc}); starting empty") from None
    for (module_name, class_name), accounts in snapshot.items():
        module = importlib.import_module(module_name)
        backends = [v for v in vars(module).values()
                    if isinstance(v, BackendDict) and v.backend.__qualname__ == class_name]
        if not backends:
            raise MotoChanged(f"moto's {module_name} no longer has the backends of {class_name}")
        for account, regions in accounts.items():
            by_region = backends[0][account]
            for region, backend in regions.items():
                dict.__setitem__(by_region, region, backend)
    return len(snapshot)
