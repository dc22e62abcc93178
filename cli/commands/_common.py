"""Options every command that talks to AWS (or the local emulator) shares."""

from __future__ import annotations

import argparse


def add_location(p: argparse.ArgumentParser, *, stage: bool = True) -> None:
    if stage:
        p.add_argument("--stage", help="stage (default: dev)")
    p.add_argument("--local", action="store_true", help="talk to the local emulator instead of AWS")
    p.add_argument("--region", help="AWS region (default: AWS_REGION or your profile's)")
    p.add_argument("--profile", help="AWS profile (default: AWS_PROFILE or default)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
