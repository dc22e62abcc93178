"""Load a model's hooks module in a bounded child process, as `mlfn validate` and `mlfn build` require.

    check_hooks(spec.hooks_path)   # None when the module imports and defines its hooks, else SpecError (one line)

Importing the module in the CLI's own process would let it end the CLI (`os._exit(0)` at import made `validate`
exit 0 silently) or hang it (a sleep or a blocking call at import). The child imports it with `load_hooks` (the
runtime's own loader) and prints a token only this run knows once the hooks loaded; anything else (an error, an
exit at import, no answer within the timeout) is a SpecError naming the file.

`python -m mlfn.cli.hooks_check HOOKS_FILE TOKEN` is the child itself.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from mlfn.runtime.errors import SpecError

TIMEOUT_ENV = "MLFN_HOOKS_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 30.0
ERROR_PREFIX = "mlfn-hooks-error: "
IMPORTS = "a Python module that imports"


def _timeout_s() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    except ValueError:
        return DEFAULT_TIMEOUT_S


def check_hooks(path: Path | None, timeout_s: float | None = None, env: Mapping[str, str] | None = None) -> None:
    """Import the hooks file in a child process within `timeout_s` (default 30 s, or MLFN_HOOKS_TIMEOUT_S); `env`
    adds variables (the model's own packages: `dependencies.host_env`)."""
    if path is None:
        return
    limit = _timeout_s() if timeout_s is None else timeout_s
    token = secrets.token_hex(8)
    proc = subprocess.Popen([sys.executable, "-m", "mlfn.cli.hooks_check", str(path), token],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, **(env or {})},
                            start_new_session=True)  # its own group: a timeout ends whatever the import started
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise SpecError(path.name, "-", f"{IMPORTS} within {limit:g}s",
                        "an import still running after that (a loop, sleep or blocking call at import time?)") from None
    if proc.returncode == 0 and token in out.split():
        return
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    reported = [line.removeprefix(ERROR_PREFIX) for line in lines if line.startswith(ERROR_PREFIX)]
    if reported:  # the loader's own SpecError, as the child sent it: [file, field, expected, found]
        raise SpecError(*json.loads(reported[-1]))
    how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
    last = f": {lines[-1][:200]}" if lines else ""
    raise SpecError(path.name, "-", IMPORTS, f"an import that ended the process ({how}, os._exit or sys.exit at "
                                             f"import time?){last}")


def main(argv: list[str]) -> int:
    from mlfn.runtime.hooks import load_hooks

    path, token = Path(argv[0]), argv[1]
    try:
        load_hooks(path)
    except SpecError as exc:
        found = (exc.found.splitlines() or [""])[0][:400]
        print(ERROR_PREFIX + json.dumps([exc.file, exc.field, exc.expected, found]), file=sys.stderr, flush=True)
        return 2
    print(token, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
