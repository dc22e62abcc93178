"""Entry point of the `mlfn` command: parse arguments, run one subcommand, turn errors into one line."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from mlfn.runtime import __version__
from mlfn.runtime.errors import MlfnError

from .console import CliError


def command_names() -> list[str]:
    """Every public module under mlfn.cli.commands is one subcommand."""
    from . import commands

    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlfn", description="Deploy ONNX models as serverless endpoints on AWS (Lambda, SageMaker, ECS)."
    )
    parser.add_argument("--version", action="version", version=f"mlfn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_names():
        importlib.import_module(f"mlfn.cli.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (CliError, MlfnError) as exc:
        print(f"mlfn {args.command}: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"mlfn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mlfn ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        if not _is_aws_error(exc):
            raise
        # AWS refused a call or could not be reached (credentials expired, access denied, no network): one line
        print(f"mlfn {args.command}: error: AWS: {exc}", file=sys.stderr)
        return 2


def _is_aws_error(exc: BaseException) -> bool:
    """botocore's ClientError / BotoCoreError (checked by module, so the CLI never imports botocore for this)."""
    return type(exc).__module__.startswith("botocore.")


if __name__ == "__main__":
    sys.exit(main())
