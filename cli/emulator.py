"""The local cloud as two background processes: the control plane (moto with mlfn's extensions) and the data plane
(sandboxes, container instances and the HTTPS gateway), both on 127.0.0.1, state under `<MLFN_HOME>/local` or
`.mlfn/local`.

    info = ensure_running()        # idempotent: starts what is not running, returns the addresses
    stop()                         # data plane first (it ends its sandboxes), then the control plane

The data plane forwards sandbox logs to the control plane's CloudWatch Logs, so `mlfn logs --local` reads them
through the same API as in AWS.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .console import CliError
from .local.emulator_state import read_json, state_dir
from .local.processes import StartError, alive, spawn_until_ready, terminate

DATA_PLANE_LOG = "data-plane.log"


@dataclass(frozen=True)
class EmulatorInfo:
    """Where the running emulator listens."""

    state_dir: Path
    control_url: str  # http://127.0.0.1:PORT, what AWS_ENDPOINT_URL must be
    gateway_url: str  # https://127.0.0.1:PORT/, the data plane's shared HTTPS port
    ca_path: Path
    control_pid: int
    data_pid: int

    def to_json(self) -> dict[str, Any]:
        return {"state_dir": str(self.state_dir), "control_plane": self.control_url, "gateway": self.gateway_url,
                "ca": str(self.ca_path), "pids": {"control_plane": self.control_pid, "data_plane": self.data_pid}}


def _data_plane_admin(folder: Path) -> dict[str, Any] | None:
    admin = read_json(folder / "data-plane" / "admin.json")
    if isinstance(admin, dict) and alive(int(admin.get("pid", 0))):
        return admin
    return None


def _control_pid(folder: Path) -> int:
    data = read_json(folder / "control-plane.json")
    return int(data.get("pid", 0)) if isinstance(data, dict) else 0


def running(directory: str | Path | None = None) -> EmulatorInfo | None:
    """The running emulator's addresses, or None unless both planes are up."""
    from .local.control_plane import running_url

    folder = state_dir(directory)
    url = running_url(folder)
    admin = _data_plane_admin(folder)
    gateway = read_json(folder / "gateway.json")
    if not url or admin is None or not isinstance(gateway, dict):
        return None
    return EmulatorInfo(folder.resolve(), url, str(gateway["url"]), Path(str(gateway.get("ca", ""))),
                        _control_pid(folder), int(admin["pid"]))


def ensure_running(directory: str | Path | None = None, *, timeout_s: float = 120) -> EmulatorInfo:
    """Start whichever plane is not running (nothing when both are) and return the addresses."""
    from .local.control_plane import running_url, start_process

    folder = state_dir(directory)
    info = running(folder)
    if info is not None:
        return info
    folder.mkdir(parents=True, exist_ok=True)
    if running_url(folder) is None:
        stop(folder, timeout_s=timeout_s)  # a data plane alone: it follows the control plane, start both afresh
    try:
        url = start_process(folder, timeout_s=timeout_s)
    except RuntimeError as exc:
        raise CliError(f"the local emulator's control plane did not start: {exc}") from None
    if _data_plane_admin(folder) is None:
        _start_data_plane(folder, url, timeout_s)
    info = running(folder)
    if info is None:
        raise CliError(f"the local emulator did not come up (see {folder}/control-plane.log and {DATA_PLANE_LOG})")
    return info


def _start_data_plane(folder: Path, control_url: str, timeout_s: float) -> None:
    (folder / "data-plane" / "admin.json").unlink(missing_ok=True)

    def ready() -> bool | None:
        return True if _data_plane_admin(folder) is not None and read_json(folder / "gateway.json") else None

    try:
        spawn_until_ready(
            [sys.executable, "-m", "mlfn.cli.local.data_plane", "--state-dir", str(folder),
             "--control-plane", control_url],
            folder / DATA_PLANE_LOG, ready, what="the local emulator's data plane", timeout_s=timeout_s,
        )
    except StartError as exc:
        raise CliError(str(exc)) from None


def stop(directory: str | Path | None = None, *, timeout_s: float = 30) -> bool:
    """Stop both planes (data plane first, so its sandboxes end with it); False when nothing was running."""
    from .local.control_plane import stop_process

    folder = state_dir(directory)
    stopped = False
    admin = _data_plane_admin(folder)
    if admin is not None:
        # the data plane leads its own session: a SIGKILL to its group ends its sandboxes too
        terminate(int(admin["pid"]), timeout_s=timeout_s, group=True)
        stopped = True
    stopped = stop_process(folder) or stopped
    return stopped


def reset(directory: str | Path | None = None) -> Path:
    """Stop the emulator and delete everything it kept (stacks, functions, images, logs, TLS files)."""
    import shutil

    folder = state_dir(directory)
    stop(folder)
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def data_plane_client(info: EmulatorInfo) -> Any:
    from .local.data_plane import DataPlaneClient

    return DataPlaneClient(info.state_dir)
