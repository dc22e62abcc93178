"""Options every command that talks to AWS (or the local emulator) shares."""

from __future__ import annotations

import argparse


def add_location(p: argparse.ArgumentParser, *, stage: bool = True, stage_help: str = "stage (default: dev)",
                 local_help: str = "talk to the local emulator instead of AWS") -> None:
    """--stage (unless `stage` is False), --local, --region, --profile and --json."""
    if stage:
        p.add_argument("--stage", help=stage_help)
    p.add_argument("--local", action="store_true", help=local_help)
    p.add_argument("--region", help="AWS region (default: AWS_REGION or your profile's)")
    p.add_argument("--profile", help="AWS profile (default: AWS_PROFILE or default)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
