"""SnapStart hooks of the Lambda entry point: registered for a snap-start init only; a restore gets its own randomness.

Every sandbox restored from one snapshot starts from the same memory, so from the same generator state: setting the
snapshot's state back is what a restore does (a fork would not show it: CPython re-seeds `random` in a forked child).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import snapshot_restore_py

from mlfn.runtime import snapstart
from mlfn.runtime.asgi import new_request_id


def _two_restores(after_restore: Callable[[], None]) -> list[tuple[str, float]]:
    """A request id and a numpy draw from each of two sandboxes restored from one snapshot."""
    snapshot = random.getstate(), np.random.get_state()
    made = []
    for _ in range(2):
        random.setstate(snapshot[0])
        np.random.set_state(snapshot[1])
        after_restore()
        made.append((new_request_id(), float(np.random.random())))
    return made


def test_after_restore_gives_each_restored_sandbox_its_own_random_state() -> None:
    shared = _two_restores(lambda: None)
    assert shared[0] == shared[1]  # what a snapshot does to generators seeded at init
    restored = _two_restores(snapstart.after_restore)
    assert restored[0][0] != restored[1][0] and restored[0][1] != restored[1][1]


@pytest.fixture
def clean_registries() -> Iterator[None]:
    before = list(snapshot_restore_py.get_before_snapshot()), list(snapshot_restore_py.get_after_restore())
    yield
    snapshot_restore_py.get_before_snapshot()[:] = before[0]
    snapshot_restore_py.get_after_restore()[:] = before[1]


class _Handler:
    init_seconds = 1.5


def test_hooks_register_only_for_a_snap_start_init(monkeypatch: pytest.MonkeyPatch, clean_registries: None) -> None:
    handler = _Handler()
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
    assert not snapstart.register(handler)
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    assert snapstart.register(handler)
    assert (snapstart.before_snapshot, (), {}) in snapshot_restore_py.get_before_snapshot()
    func, args, _ = snapshot_restore_py.get_after_restore()[-1]
    func(*args)
    assert func is snapstart.after_restore and handler.init_seconds == 0.0
