"""`mlfn serve MODEL_DIR`: run a model directory's server on this machine, as its container image would."""

from __future__ import annotations

import argparse
import os
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="serve a model directory over HTTP (KServe v1, Open Inference Protocol v2, SageMaker)",
        description="Serve a model directory with the same server its container image runs. "
                    "Stop with Ctrl-C; SIGTERM lets in-flight requests finish.",
    )
    p.add_argument("model_dir", help="folder holding model.onnx and an optional mlfn.toml")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("--access-log", action="store_true", help="log one line per request with its request id")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mlfn.runtime.server import parse_args, serve
    from mlfn.runtime.spec import load_spec

    from ..console import CliError
    from ..packaging.dependencies import host_env

    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be 0 to 65535, got {args.port}")
    spec = load_spec(args.model_dir)  # an invalid directory fails here, as one line, before anything binds
    os.environ.update(host_env(spec.directory))  # the folder's requirements.txt, installed for this machine
    argv = ["serve", "--model-dir", str(spec.directory), "--host", args.host, "--port", str(args.port),
            "--log-level", args.log_level]
    if args.access_log:
        argv.append("--access-log")
    return serve(parse_args(argv))
