"""What the commands import from the fleet package: its options and its entry points (one hook line each)."""

from __future__ import annotations

import argparse

__all__ = ["add_fleet_options", "is_selection", "run_deploy"]


def add_fleet_options(p: argparse.ArgumentParser) -> None:
    """--workers, --max-stacks and --verbose (they matter only when several models are selected)."""
    p.add_argument("--workers", type=_positive, metavar="N",
                   help="fleet: builds and health probes at a time (default: the machine's cores; pushes: 4 x N)")
    p.add_argument("--max-stacks", type=_positive, metavar="N",
                   help="fleet: change sets in flight at a time (default 4)")
    p.add_argument("--verbose", "-v", action="store_true", help="fleet: print every stack event of every model")


def is_selection(args: list[str]) -> bool:
    """Several models (folders of them, several folders, a glob) rather than one folder or one name."""
    from .selection import is_selection as selects

    return selects(args)


def run_deploy(args: argparse.Namespace) -> int:
    from .deploy import run_deploy as run

    return run(args)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of 1 or more")
    return value


