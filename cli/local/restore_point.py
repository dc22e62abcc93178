"""The emulator's stand-in for a SnapStart snapshot, run inside a sandbox as `python restore_point.py <handler>`.

On AWS, Lambda snapshots the microVM while the runtime waits in `GET /2018-06-01/runtime/restore/next`, and that
call answers in each environment restored from the snapshot. Here no checkpoint/restore is available (CRIU is not
installed on the machine), so the initialised runtime process itself stays waiting there and becomes a zygote: every
answer to its `GET /restore/next` that names a new sandbox (`Mlfn-Restore-Runtime-Api`, `Mlfn-Restore-Log`) makes it
`fork()`. The child continues exactly where AWS's restored environment does: `restore_next()` returns, awslambdaric
runs the after-restore hooks and polls `/invocation/next`, now on the new sandbox's own Runtime API and with its
output on the new sandbox's log. The parent reports the child's pid (`Mlfn-Restored-Pid`) on its next
`GET /restore/next` and waits again. Init never runs twice; memory is shared copy-on-write as a snapshot's pages are.

Only the standard library and the image's awslambdaric are used, so this file runs under the sandbox's Python.
Limits of the stand-in: threads of the zygote do not exist in its children (a fork copies the calling thread only).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
from typing import Any

RESTORE_NEXT = "/2018-06-01/runtime/restore/next"
RUNTIME_API_HEADER = "Mlfn-Restore-Runtime-Api"
LOG_HEADER = "Mlfn-Restore-Log"
RESTORED_PID_HEADER = "Mlfn-Restored-Pid"


def _restore_next(client: Any) -> None:
    """awslambdaric's `restore_next`, made the zygote's loop (see the module docstring)."""
    from awslambdaric import lambda_runtime_client

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # restored children are reaped by the kernel
    pid = 0
    while True:
        connection = http.client.HTTPConnection(client.lambda_runtime_address)
        connection.request("GET", RESTORE_NEXT, headers={RESTORED_PID_HEADER: str(pid)} if pid else {})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        if response.status != 200:
            raise lambda_runtime_client.LambdaRuntimeClientError(RESTORE_NEXT, response.status, body)
        address, log_path = response.getheader(RUNTIME_API_HEADER), response.getheader(LOG_HEADER)
        if not address or not log_path:  # restored in place: carry on in this process
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            return
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _become_restored(client, address, log_path)
            return


def _become_restored(client: Any, address: str, log_path: str) -> None:
    from awslambdaric import lambda_runtime_client

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()  # its own process group, ended on its own
    log = os.open(log_path, os.O_WRONLY)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ["AWS_LAMBDA_RUNTIME_API"] = address
    client.lambda_runtime_address = address
    # awslambdaric's native client reads AWS_LAMBDA_RUNTIME_API once, when it is loaded: this copy talks to its own
    # sandbox's Runtime API through the same calls made over http.client.
    lambda_runtime_client.runtime_client = _HttpRuntimeClient(address)


class _HttpRuntimeClient:
    """The calls awslambdaric makes on its native `runtime_client` module, over http.client (keep-alive)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._connection: http.client.HTTPConnection | None = None

    def _call(self, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        for attempt in (1, 2):  # a kept-alive connection the server closed is opened again once
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.address)
            try:
                self._connection.request(method, path, body, headers or {})
                response = self._connection.getresponse()
                return response.status, response.read(), dict(response.getheaders())
            except (ConnectionError, http.client.HTTPException):
                self._connection.close()
                self._connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def initialize_client(self, user_agent: str) -> None:
        pass

    def next(self) -> tuple[bytes, dict[str, str]]:
        status, body, headers = self._call("GET", "/2018-06-01/runtime/invocation/next")
        if status != 200:
            raise RuntimeError(f"GET /invocation/next answered {status}: {body!r}")
        return body, headers

    def post_invocation_result(self, invoke_id: str, result: bytes, content_type: str,
                               invocation_id: str | None = None) -> None:
        self._call("POST", f"/2018-06-01/runtime/invocation/{invoke_id}/response", result,
                   {"Content-Type": content_type or "application/json"})

    def post_error(self, invoke_id: str, error: str | bytes, xray_fault: str, invocation_id: str | None = None) -> None:
        data = error if isinstance(error, bytes) else error.encode()
        try:
            error_type = str(json.loads(data).get("errorType", "Unhandled"))
        except (ValueError, AttributeError):
            error_type = "Unhandled"
        headers = {"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": error_type}
        if xray_fault:
            headers["Lambda-Runtime-Function-XRay-Error-Cause"] = xray_fault
        self._call("POST", f"/2018-06-01/runtime/invocation/{invoke_id}/error", data, headers)


def main(argv: list[str]) -> None:
    from awslambdaric import __main__ as ric_main
    from awslambdaric import lambda_runtime_client

    lambda_runtime_client.BaseLambdaRuntimeClient.restore_next = _restore_next  # type: ignore[method-assign]
    ric_main.main(argv)


if __name__ == "__main__":
    main(sys.argv)
