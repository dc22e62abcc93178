"""Where the local emulator keeps its files, and the addresses its processes publish there.

The state directory is `<MLFN_HOME>/local` when MLFN_HOME is set, else `.mlfn/local` under the current directory.
Each long-running part writes `<state>/<component>.json` (`{"url": ..., "pid": ...}`) once it listens, and removes it
when it stops: `control-plane.json` (the moto server, `http://127.0.0.1:PORT`, what AWS_ENDPOINT_URL should be) and
`gateway.json` (the data plane's HTTPS gateway). Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

CONTROL_PLANE = "control-plane"
GATEWAY = "gateway"
DATA_PLANE = "data-plane"  # the data plane's internal API (where the control plane's Invoke goes), 127.0.0.1



def state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The emulator's state directory: `explicit`, else `$MLFN_HOME/local`, else `./.mlfn/local`."""
    if explicit:
        return Path(explicit)
    home = os.environ.get("MLFN_HOME")
    return Path(home) / "local" if home else Path(".mlfn") / "local"


def write_json(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` atomically, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any | None:
    """The JSON in `path`, or None when it is missing or half-written."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def publish_address(directory: Path, component: str, url: str, **extra: Any) -> Path:
    """Announce that `component` listens at `url` (with this process's pid)."""
    path = directory / f"{component}.json"
    write_json(path, {"url": url, "pid": os.getpid(), **extra})
    return path


def read_address(directory: Path, component: str) -> str | None:
    """The URL `component` announced in `directory`, or None."""
    data = read_json(directory / f"{component}.json")
    return data.get("url") if isinstance(data, dict) else None


def withdraw_address(directory: Path, component: str) -> None:
    """Remove `component`'s address file if this process wrote it."""
    path = directory / f"{component}.json"
    data = read_json(path)
    if isinstance(data, dict) and data.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def inference_component_copies(directory: Path, account: str, region: str, name: str) -> int | None:
    """The copy count the control plane recorded for inference component `name` (its `inference-components.json`),
    or None when it records no such component (or no control plane shares this state directory)."""
    for entry in read_json(directory / "inference-components.json") or []:
        if isinstance(entry, dict) and (entry.get("account"), entry.get("region"), entry.get("name")) == (
                account, region, name):
            return int(entry.get("copy_count", 0))
    return None
