"""`mlfn status functions/` (and `mlfn list functions/`): one line per model and stage of the selected folders:
stack status, version, target, last deploy time, URL and drift from the folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..console import result
from .selection import select

COLUMNS = ("model", "stage", "target", "status", "version", "deployed", "drift")
LIST_COLUMNS = ("model", "stage", "target", "status", "deployed", "url")


def fleet_status(folders: list[Path], session: Any, emulator: Any, stage: str | None,
                 with_drift: bool = True) -> list[dict[str, Any]]:
    from mlfn.infra.checks import resolve_target
    from mlfn.infra.naming import stack_name
    from mlfn.runtime.errors import MlfnError
    from mlfn.runtime.spec import load_spec

    from ..aws.cloudformation import describe_stack, outputs_of
    from ..commands.status import _version as lambda_version
    from ..endpoints import endpoint_for
    from .drift import drift, folder_digest

    cfn = session.client("cloudformation")
    rows = []
    for folder in folders:
        try:
            spec = load_spec(folder)
            target = resolve_target(spec, None)
        except MlfnError as exc:  # this folder's line says why; the others are still shown
            rows.append({"model": folder.name, "stage": stage or "", "target": "", "stack": "",
                         "status": f"invalid folder: {exc}", "version": "", "deployed": "", "url": "", "drift": []})
            continue
        spec = spec.with_target(target)
        digest = ""
        for each in [stage] if stage else list(spec.settings.stages):
            name = stack_name(spec, each)
            row: dict[str, Any] = {"model": spec.name, "stage": each, "target": target, "stack": name,
                                   "status": "not deployed", "version": "", "deployed": "", "url": "", "drift": []}
            rows.append(row)
            stack = describe_stack(cfn, name)
            if stack is None:
                continue
            outputs = outputs_of(stack)
            updated = stack.get("LastUpdatedTime") or stack.get("CreationTime")
            row.update(status=stack["StackStatus"], target=outputs.get("Target", target),
                       deployed=updated.isoformat(timespec="seconds") if updated else "",
                       version=lambda_version(session, outputs).get("version", ""))
            if "InvokeUrl" in outputs:
                row["url"] = endpoint_for(session, name, outputs, emulator).url
            if with_drift:
                digest = digest or folder_digest(spec)
                row["drift"] = drift(session, name, outputs, spec, digest, target)
    return rows


def render(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    def cell(row: dict[str, Any], column: str) -> str:
        value = row.get(column)
        if column == "drift":
            return "; ".join(value) if value else ("none" if row["stack"] and row["status"] != "not deployed" else "-")
        return str(value or "-")

    cells = [[cell(r, c) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(t.ljust(w) for t, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def run_status(args: argparse.Namespace, paths: list[str], with_drift: bool = True) -> int:
    from ..endpoints import open_session

    folders = select(paths)
    session, emulator = open_session(local=args.local, region=args.region, profile=args.profile)
    rows = fleet_status(folders, session, emulator, getattr(args, "stage", None), with_drift)
    result(rows, args.json, render(rows, COLUMNS if with_drift else LIST_COLUMNS))
    return 0
