"""Start a model's image contents in a throwaway process and require a healthy answer before any rollout.

    probe(model_dir, "lambda")     # None when healthy, else HealthError("... <the sandbox's own reason>")

The probe is a separate Python process (a sandbox that lives for one check): for Lambda it imports
`mlfn.runtime.lambda_handler` with `MLFN_MODEL_DIR` pointing at the contents (the init phase Lambda runs) and calls the
handler with a Function URL event for `GET /ping`; for containers it builds the app the `serve` process runs and asks
`/ping`. When the folder holds `example.json`, that request must answer 2xx too. A model that cannot load, hooks that
fail at import, or an example the model refuses fail the probe with the process's last error line.

`python -m mlfn.cli.health_probe MODEL_DIR --target lambda|sagemaker|ecs` is the process itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlfn.runtime.errors import MlfnError

EXAMPLE = "example.json"
HEALTHY = json.dumps({"healthy": True})  # the probe process's last line when every request answered


class HealthError(MlfnError):
    """The new version did not answer healthily; nothing was rolled out."""


def probe(model_dir: str | Path, target: str, *, timeout_s: float = 120) -> float:
    """Run the probe process; returns its wall time, or raises HealthError with the reason it gave."""
    started = time.perf_counter()
    env = {**os.environ, "MLFN_MODEL_DIR": str(Path(model_dir).resolve()), "PYTHONUNBUFFERED": "1",
           "MLFN_ALLOW_CPU_FOR_GPU": "1"}  # this machine may have no GPU: the probe checks the model, not CUDA
    env.pop("AWS_ENDPOINT_URL", None)
    from .packaging.dependencies import DependencyError, host_env

    try:
        env.update(host_env(model_dir))  # the folder's requirements.txt, installed for this machine's Python
    except DependencyError as exc:
        raise HealthError(f"the new version's requirements.txt cannot be installed here: {exc}") from None
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mlfn.cli.health_probe", str(model_dir), "--target", target],
            env=env, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise HealthError(f"the new version did not answer /ping within {timeout_s:.0f}s") from None
    if done.returncode == 0 and HEALTHY not in done.stdout.splitlines():  # os._exit(0) in the model's hooks
        raise HealthError("the new version is unhealthy, nothing was rolled out: the probe process ended (exit "
                          "status 0) before answering /ping; does the model's hooks module exit at import?")
    if done.returncode != 0:
        lines = [line for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if line.startswith("unhealthy: ")), lines[-1] if lines else "")
        raise HealthError(f"the new version is unhealthy, nothing was rolled out: {reason.removeprefix('unhealthy: ')}")
    return time.perf_counter() - started


def _url_event(method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> dict[str, Any]:
    from mlfn.runtime.lambda_http import event_of

    return event_of(method, path, body, {"host": "127.0.0.1", "content-type": content_type},
                    source_ip="127.0.0.1", request_id="mlfn-health-probe")


class _Context:
    function_name = "mlfn-health-probe"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlfn-health-probe"
    memory_limit_in_mb = "1024"
    aws_request_id = "mlfn-health-probe"
    log_group_name = "/aws/lambda/mlfn-health-probe"
    log_stream_name = "probe"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _requests(model_dir: Path, name: str) -> list[tuple[str, str, bytes]]:
    wanted = [("GET", "/ping", b"")]
    example = model_dir / EXAMPLE
    if example.is_file():
        wanted.append(("POST", f"/v1/models/{name}:predict", example.read_bytes()))
    return wanted


def _run_lambda(model_dir: Path, name: str) -> None:
    from mlfn.runtime import lambda_handler

    for method, path, body in _requests(model_dir, name):
        answer = lambda_handler.handler(_url_event(method, path, body), _Context())
        status = int(answer.get("statusCode", 200)) if isinstance(answer, dict) else 200
        if status >= 300:
            text = answer.get("body", "") if isinstance(answer, dict) else answer
            raise SystemExit(f"unhealthy: {method} {path} answered {status}: {str(text)[:300]}")


def _run_container(model_dir: Path, name: str) -> None:
    from starlette.testclient import TestClient

    from mlfn.runtime.app import create_app

    with TestClient(create_app(str(model_dir))) as client:
        for method, path, body in _requests(model_dir, name):
            response = client.request(method, path, content=body or None,
                                      headers={"content-type": "application/json"})
            if response.status_code >= 300:
                raise SystemExit(f"unhealthy: {method} {path} answered {response.status_code}: {response.text[:300]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlfn.cli.health_probe")
    parser.add_argument("model_dir")
    parser.add_argument("--target", default="lambda", choices=("lambda", "sagemaker", "ecs"))
    args = parser.parse_args(argv)
    model_dir = Path(args.model_dir).resolve()
    os.environ["MLFN_MODEL_DIR"] = str(model_dir)
    try:
        from mlfn.runtime.spec import load_spec

        name = load_spec(model_dir).name
        (_run_lambda if args.target == "lambda" else _run_container)(model_dir, name)
    except SystemExit:
        raise
    except BaseException as exc:  # whatever the model or its hooks raised at load: the reason to show
        print(f"unhealthy: {type(exc).__name__}: {exc}".splitlines()[0][:400], file=sys.stderr)
        return 1
    print(HEALTHY)
    return 0


if __name__ == "__main__":
    sys.exit(main())
