"""`mlfn destroy NAME [--stage S] [--yes] [--keep-logs]`: delete a model's stack (asks first unless --yes).

The stack keeps its log groups when deleted (DeletionPolicy RetainExceptOnCreate). The ones with a fixed name
(SageMaker's) would make the next deploy of the model fail "already exists", so they are deleted after the stack
unless `--keep-logs`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..console import CliError, info, result
from ._common import add_location


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("destroy", help="delete a deployed model's stack and everything in it")
    p.add_argument("name", nargs="+", help="the model's name; or model folders, folders of them or globs (fleet)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the log groups with fixed names too (the next deploy of the model then fails until "
                        "they are deleted)")
    add_location(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..aws.cloudformation import delete_log_groups, destroy, fixed_name_log_groups, outputs_of
    from ..endpoints import data_plane_key, find_stack, open_session, stack_name_for

    if isinstance(args.name, list):  # fleet hook
        from ..fleet.selection import names_path

        if len(args.name) > 1 or names_path(args.name[0]):
            from ..fleet.commands import run_destroy

            return run_destroy(args, args.name)
        args.name = args.name[0]
    session, emulator = open_session(local=args.local, region=args.region, profile=args.profile)
    stack_name = stack_name_for(args.name, args.stage)
    stack = find_stack(session, stack_name, emulator, "nothing to destroy")
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"refusing to destroy {stack_name} without confirmation: no terminal to ask on; "
                           "pass --yes")
        answer = input(f"Destroy {stack_name} ({stack['StackStatus']}) and everything in it? Type the name to "
                       f"confirm [{stack_name}]: ")
        if answer.strip() not in (stack_name, args.name):
            raise CliError("not confirmed: nothing was destroyed", exit_code=1)
    outputs = outputs_of(stack)
    fixed_logs = [] if args.keep_logs else fixed_name_log_groups(session, stack_name)
    info(f"- deleting stack {stack_name} ...")
    destroy(stack_name, session=session, on_event=lambda event: info(event.line()))
    deleted_logs = delete_log_groups(session, fixed_logs)
    for name in deleted_logs:
        info(f"- deleted log group {name} (the stack kept it; its fixed name would block the next deploy)")
    if emulator is not None:
        from ..emulator import data_plane_client

        key = data_plane_key(outputs)
        if key and not key.startswith("lambda:"):  # a Lambda function's end reaches the data plane by itself
            data_plane_client(emulator).unregister(key)
    result({"stack": stack_name, "destroyed": True, "deletedLogGroups": deleted_logs}, args.json,
           f"{stack_name}: destroyed")
    return 0
