"""SnapStart runtime hooks of the Lambda entry point.

With SnapStart Lambda runs init once, when a version is published, snapshots the environment and resumes every new
sandbox from that snapshot ("Improving startup performance with Lambda SnapStart"). For a container image the
runtime drives that lifecycle through the Runtime API ("Implementing SnapStart hooks for container images"):
awslambdaric, the image's runtime, does it itself when AWS_LAMBDA_INITIALIZATION_TYPE is `snap-start`. It runs
the before-snapshot hooks registered with `snapshot_restore_py` (its own dependency), calls
`GET /2018-06-01/runtime/restore/next`, and once restored runs the after-restore hooks, reporting a failure with
`POST .../restore/error`. So mlfn's images implement the restore calls and need no
`com.amazonaws.lambda.feature.snapstart` label; this module only registers what mlfn must do at those two points:

- before the snapshot: the model's session already exists (the handler module builds it at import, the init
  phase); collect garbage so the snapshot holds no dead objects;
- after restore: whatever must differ between sandboxes restored from one snapshot ("Handling uniqueness with
  Lambda SnapStart"): the `random` generator (request ids that are not Lambda's come from it: `asgi.new_request_id`)
  and numpy's global generator are re-seeded from the OS, and the sandbox reports no init phase of its own.
"""

from __future__ import annotations

import os
import sys
from typing import Any

SNAP_START = "snap-start"  # AWS_LAMBDA_INITIALIZATION_TYPE of a SnapStart version (awslambdaric's INIT_TYPE_SNAP_START)


def before_snapshot() -> None:
    import gc

    gc.collect()


def after_restore(handler: Any = None) -> None:
    """Give this restored sandbox its own random state; its first invocation reports no init duration."""
    # Only generators already imported are in the snapshot; one imported later seeds itself from os.urandom. So the
    # Lambda init path does not import `random` for this (the runtime imports it on first use).
    random = sys.modules.get("random")
    if random is not None:
        random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    if handler is not None:
        handler.init_seconds = 0.0


def register(handler: Any) -> bool:
    """Register the hooks when this sandbox is a SnapStart init (awslambdaric runs them); whether it did."""
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != SNAP_START:
        return False
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:  # a runtime without awslambdaric's hooks library: nothing calls them
        return False
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore, handler)
    return True
