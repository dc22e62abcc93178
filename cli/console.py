"""How the `mlfn` command talks to people and to machines: short lines on stderr, `--json` on stdout."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class CliError(Exception):
    """A failure to report as one line and a non-zero exit, never a stack trace."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def info(message: str) -> None:
    """A line for a person (stderr, so stdout stays clean for results and --json)."""
    print(message, file=sys.stderr, flush=True)


def result(value: Any, as_json: bool, text: str | None = None) -> None:
    """The command's result: JSON on stdout with --json, else `text` (or the value) for a person."""
    if as_json:
        print(json.dumps(value, indent=2, default=str))
    else:
        print(text if text is not None else value)


@contextmanager
def step(label: str) -> Iterator[None]:
    """Show a long operation's start and how long it took."""
    info(f"- {label} ...")
    started = time.perf_counter()
    yield
    info(f"  {label}: done in {time.perf_counter() - started:.1f}s")
