"""What HTTPS URL the emulator gives a Function URL, and how other parts look it up.

AWS gives `https://<url-id>.lambda-url.<region>.on.aws/`; nothing resolves such names offline, so the emulator's
Function URLs are `https://127.0.0.1:<port>/`, one port per Function URL (the URL's path stays the function's own,
exactly as in AWS). The port is chosen when the URL is created (a free port on 127.0.0.1) and kept for the life of the
control plane; the data plane's gateway binds it. Where the URLs come from is pluggable: pass another `UrlAllocator`
to `ControlPlane(url_allocator=...)` or call `set_url_allocator`.

Readers: `function_url_for(name, qualifier)` (in the control plane's process, or from `<state>/function-urls.json`
in any other), or boto3 `lambda.get_function_url_config(FunctionName=name, Qualifier=alias)` against the emulator.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Callable
from pathlib import Path

from .emulated_stores import STORES
from .emulator_state import read_json, state_dir

UrlAllocator = Callable[[str, str, str, "str | None"], str]  # (account, region, function name, qualifier) -> URL


def url_id(*parts: str) -> str:
    """A stable 32-character lower-case id, like a real Function URL's, derived from what it names."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return base64.b32encode(digest).decode().lower()[:32]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_per_url_allocator(account: str, region: str, function_name: str, qualifier: str | None) -> str:
    """The default: `https://127.0.0.1:<free port>/`."""
    return f"https://127.0.0.1:{free_port()}/"


_allocator: UrlAllocator = port_per_url_allocator


def set_url_allocator(allocator: UrlAllocator | None) -> None:
    """Choose how new Function URLs are made (None restores the default)."""
    global _allocator
    _allocator = allocator or port_per_url_allocator


def allocate_url(account: str, region: str, function_name: str, qualifier: str | None) -> str:
    """A URL for a new Function URL, reusing the one this function/qualifier had before (stable across redeploys)."""
    with STORES.lock:
        existing = STORES.urls.get((account, region, function_name, qualifier))
        if existing is not None:
            return existing.url
    return _allocator(account, region, function_name, qualifier)


def function_url_for(
    function_name: str,
    qualifier: str | None = None,
    *,
    directory: str | Path | None = None,
) -> str | None:
    """The emulator's URL of `function_name` (alias `qualifier`), or None when it has none.

    Looks in this process's store first (the control plane's), then in `<state>/function-urls.json`.
    """
    with STORES.lock:
        for url in STORES.urls.values():
            if url.function_name == function_name and url.qualifier == qualifier:
                return url.url
    records = read_json(state_dir(directory) / "function-urls.json") or []
    for record in records:
        if record.get("function_name") == function_name and record.get("qualifier") == qualifier:
            return str(record["url"])
    return None
