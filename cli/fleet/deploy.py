"""`mlfn deploy functions/` (several folders, or a glob): every model, one shared synth, a table at the end.

One model's failure does not stop the others; each model's previous version keeps serving (its own change set
rolls back); the exit code is 1 when any model failed or rolled back.
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlfn.runtime.errors import MlfnError

from ..console import CliError, info, result
from .progress import Progress
from .scheduler import FleetSteps, Limits
from .selection import select
from .synth_batch import BatchSynth
from .table import Row, render, summary

ROLLED_BACK = ("UPDATE_ROLLBACK_COMPLETE",)


def run_deploy(args: argparse.Namespace) -> int:
    from ..deploy_flow import DeployRequest

    folders = select(list(args.model_dir))
    limits = Limits(workers=args.workers or Limits.workers, stacks=args.max_stacks or Limits.stacks)
    progress = Progress(len(folders), verbose=getattr(args, "verbose", False))
    info(f"- {len(folders)} model folder(s); up to {limits.workers} build(s) and {limits.stacks} change set(s) "
         "at a time")
    if args.local:  # start the emulator once, before the models race for it
        from ..endpoints import open_session

        open_session(local=True, region=args.region, profile=args.profile, start=True, say=info)
    requests = [DeployRequest(Path(folder), args.target, args.stage, args.local, args.region, args.profile,
                              args.base) for folder in folders]
    rows, batch, _ = deploy_fleet(requests, limits, progress)
    progress.close()
    info(f"- synth: {batch.runs} CDK app run(s), {batch.seconds:.1f}s")
    doc = {"models": [r.to_json() for r in rows], "failed": sum(r.failed for r in rows),
           "synth_runs": batch.runs, "synth_seconds": round(batch.seconds, 2)}
    result(doc, args.json, render(rows) + "\n" + summary(rows))
    return 1 if any(r.failed for r in rows) else 0


def deploy_fleet(requests: list[Any], limits: Limits, progress: Progress) -> tuple[list[Row], BatchSynth,
                                                                                  FleetSteps]:
    """Deploy every request concurrently (gated by `limits`); rows in the order of `requests`."""
    batch = BatchSynth(len(requests), lambda line: progress.say("fleet", line.removeprefix("[fleet] ")))
    steps = FleetSteps(limits, batch)
    rows: list[Row | None] = [None] * len(requests)
    lock = threading.Lock()

    def one(index: int) -> None:
        row = deploy_one(index, requests[index], steps, batch, progress)
        with lock:
            rows[index] = row

    with ThreadPoolExecutor(max_workers=max(1, len(requests)), thread_name_prefix="mlfn-fleet") as pool:
        list(pool.map(one, range(len(requests))))
    return [r for r in rows if r is not None], batch, steps


def deploy_one(index: int, request: Any, steps: FleetSteps, batch: BatchSynth, progress: Progress) -> Row:
    """One model's deploy as a row of the table; never raises (its failure is its row)."""
    from ..aws.cloudformation import DeployError
    from ..deploy_flow import deploy

    label = request.model_dir.name
    started = time.perf_counter()
    row = Row(model=label, stage=request.stage or "", target=request.target or "", result="failed")
    try:
        from ..deploy_flow import validate

        spec, row.target, row.stage = validate(request)
        label = row.model = spec.name

        def say(text: str) -> None:
            progress.say(label, text)

        outcome = deploy(request, say=say, on_event=lambda event: progress.event(label, event),
                         step=steps.for_model(index, say))
        row.stage, row.target, row.stack, row.digest = outcome.stage, outcome.target, outcome.stack_name, \
            outcome.digest
        row.url, row.steps = outcome.endpoint.url, dict(outcome.seconds)
        row.result = "unchanged" if outcome.status == "NO_CHANGES" else "deployed"
    except DeployError as exc:
        row.stack = exc.stack_name
        row.result = "rolled back" if exc.status in ROLLED_BACK else "failed"
        row.resource = f"{exc.resource} ({exc.resource_type})" if exc.resource else ""
        row.reason = exc.reason or str(exc)
    except (CliError, MlfnError) as exc:
        row.reason = str(exc)
    except Exception as exc:  # AWS refused a call (botocore), or a bug: this model's row, not the fleet's end
        row.reason = f"{type(exc).__name__}: {exc}"
    finally:
        batch.leave(index)
    row.seconds = time.perf_counter() - started
    progress.finished(label, row.result, row.seconds)
    return row
