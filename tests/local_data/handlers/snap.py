"""A handler for SnapStart: counts its inits in a file, registers runtime hooks, reports what a restore shares."""

import json
import os
import random
import time
from pathlib import Path

from snapshot_restore_py import register_after_restore, register_before_snapshot

INITS = Path(os.environ["SNAP_INITS_FILE"])
with INITS.open("a") as f:  # one line per init phase
    f.write(f"{os.getpid()}\n")
time.sleep(float(os.environ.get("INIT_SLEEP_S", "0")))
INIT_PID = os.getpid()
EVENTS: list[str] = []


@register_before_snapshot
def before() -> None:
    EVENTS.append("before-snapshot")


@register_after_restore
def after() -> None:
    EVENTS.append("after-restore")
    if os.environ.get("FAIL_AFTER_RESTORE"):
        raise RuntimeError("after-restore hook failed")


def handler(event, context):
    return {"pid": os.getpid(), "init_pid": INIT_PID, "events": EVENTS, "random": random.random(),
            "initialization_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"], "request_id": context.aws_request_id,
            "body": json.dumps(event)[:50]}
