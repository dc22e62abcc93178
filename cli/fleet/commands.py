"""The fleet forms of `mlfn destroy`, `invoke` and `plan`: the one-model command run for each selected model
(its own output kept quiet), one table at the end, exit 1 when any model failed."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlfn.runtime.errors import MlfnError

from ..console import CliError, info, result
from .selection import select
from .table import Row, render, summary

Runner = Callable[[argparse.Namespace], int]


def _quietly(runner: Runner, args: argparse.Namespace) -> tuple[int, str, str]:
    """Run a one-model command with its stdout captured: (exit code, stdout, error line)."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = int(runner(args) or 0)
        return code, out.getvalue(), ""
    except (CliError, MlfnError) as exc:
        return int(getattr(exc, "exit_code", 2)), out.getvalue(), str(exc)
    except Exception as exc:  # AWS refused a call: this model's row
        return 2, out.getvalue(), f"{type(exc).__name__}: {exc}"


def _finish(rows: list[Row], args: argparse.Namespace, columns: tuple[str, ...]) -> int:
    doc = {"models": [r.to_json() for r in rows], "failed": sum(r.failed for r in rows)}
    result(doc, args.json, render(rows, columns) + "\n" + summary(rows))
    return 1 if any(r.failed for r in rows) else 0


def _specs(paths: list[str]) -> list[Any]:
    from mlfn.runtime.spec import load_spec

    specs = []
    for folder in select(paths):
        try:
            specs.append(load_spec(folder))
        except MlfnError as exc:
            raise CliError(f"{folder}: {exc}") from None
    return specs


def run_destroy(args: argparse.Namespace, paths: list[str]) -> int:
    """Delete the stack of every selected model (on --stage, else on each of its stages that has one)."""
    from ..aws.cloudformation import describe_stack
    from ..commands.destroy import run as destroy_one
    from ..endpoints import open_session, stack_name_for

    session, _ = open_session(local=args.local, region=args.region, profile=args.profile)
    cfn = session.client("cloudformation")
    targets = [(spec.name, stage) for spec in _specs(paths)
               for stage in ([args.stage] if args.stage else spec.settings.stages)
               if describe_stack(cfn, stack_name_for(spec.name, stage)) is not None]
    if not targets:
        raise CliError("none of the selected models has a stack: nothing to destroy")
    names = ", ".join(stack_name_for(n, s) for n, s in targets)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"refusing to destroy {len(targets)} stack(s) without confirmation: no terminal to ask "
                           "on; pass --yes")
        if input(f"Destroy {names} and everything in them? Type yes to confirm: ").strip() != "yes":
            raise CliError("not confirmed: nothing was destroyed", exit_code=1)
    rows = []
    for name, stage in targets:
        info(f"[{name}] - destroying {stack_name_for(name, stage)} ...")
        one = argparse.Namespace(**{**vars(args), "name": name, "stage": stage, "yes": True, "json": False})
        code, _, error = _quietly(destroy_one, one)
        rows.append(Row(name, stage, "", "destroyed" if code == 0 else "failed", stack=stack_name_for(name, stage),
                        reason=error))
    return _finish(rows, args, ("model", "stage", "result", "stack"))


def run_invoke(args: argparse.Namespace, paths: list[str]) -> int:
    """Call every selected model once: with --data, or else with its folder's example.json."""
    from ..commands.invoke import run as invoke_one

    rows = []
    for folder in select(paths):
        from mlfn.runtime.spec import load_spec

        try:
            name = load_spec(folder).name
        except MlfnError as exc:
            rows.append(Row(folder.name, args.stage or "", "", "failed", reason=str(exc)))
            continue
        example = Path(folder) / "example.json"
        data = args.data or (f"@{example}" if example.is_file() else None)
        if data is None:
            rows.append(Row(name, args.stage or "", "", "failed", reason="no --data and no example.json"))
            continue
        one = argparse.Namespace(**{**vars(args), "name": name, "data": data, "json": True})
        code, out, error = _quietly(invoke_one, one)
        answer = _json(out)
        status = answer.get("status", "") if isinstance(answer, dict) else ""
        body = json.dumps(answer.get("body"))[:80] if isinstance(answer, dict) else ""
        rows.append(Row(name, args.stage or "dev", "", "answered" if code == 0 else "failed",
                        url=answer.get("url", "") if isinstance(answer, dict) else "",
                        reason=error or (f"HTTP {status}: {body}" if code else body)))
    return _finish(rows, args, ("model", "result", "url", "reason"))


def run_plan(args: argparse.Namespace, paths: list[str]) -> int:
    """`mlfn plan` of every selected model, one after another (each measurement uses the machine's cores)."""
    from ..commands.plan import run as plan_one

    rows = []
    for folder in select(paths):
        info(f"[{folder.name}] - measuring and pricing ...")
        one = argparse.Namespace(**{**vars(args), "model_dir": str(folder), "json": True, "chart": None})
        code, out, error = _quietly(plan_one, one)
        doc = _json(out)
        chosen = (doc.get("chosen") or {}) if isinstance(doc, dict) else {}
        row = Row(doc.get("model", folder.name) if isinstance(doc, dict) else folder.name, "",
                  str(chosen.get("target", "")), "planned" if code == 0 else "failed", reason=error)
        if chosen:
            row.reason = f"{chosen.get('config', '')}: ${chosen.get('monthly_usd') or 0:,.2f}/month"
        rows.append(row)
    return _finish(rows, args, ("model", "target", "result", "reason"))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {}


def run_synth(args: argparse.Namespace, paths: list[str]) -> int:
    """Every selected model's stack in one CDK app run (jsii and CDK start once): one template per model."""
    import time

    from mlfn.infra.checks import check_stage, resolve_target
    from mlfn.infra.naming import stack_name
    from mlfn.infra.synth import synth_models

    if args.image:
        raise CliError("--image names one model's image: synthesize one model folder to use it")
    models, names = [], []
    for spec in _specs(paths):
        try:
            check_stage(spec, args.stage)
            target = resolve_target(spec, args.target)
        except MlfnError as exc:
            raise CliError(f"{spec.directory}: {exc}") from None
        models.append({"model_dir": spec.directory, "stage": args.stage, "target": target})
        names.append((spec.name, target, stack_name(spec, args.stage)))
    out = Path(args.out) if args.out else Path("cdk.out") / "mlfn-fleet"
    info(f"- synth {len(models)} stack(s) in one CDK app run -> {out}")
    started = time.perf_counter()
    templates = synth_models(models, outdir=out)
    seconds = time.perf_counter() - started
    rows = [{"model": name, "target": target, "stack": stack, "template": str(path),
             "resources": len(json.loads(path.read_text(encoding="utf-8")).get("Resources", {}))}
            for (name, target, stack), path in zip(names, templates, strict=True)]
    text = "\n".join(f"{r['stack']}: {r['resources']} resources -> {r['template']}" for r in rows)
    result({"stacks": rows, "outdir": str(out), "seconds": round(seconds, 1)}, args.json,
           f"{text}\n{len(rows)} stack(s), cdk-nag clean, in one app run ({seconds:.1f}s)")
    return 0
