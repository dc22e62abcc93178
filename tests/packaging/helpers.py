"""Small helpers shared by the packaging tests."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from mlfn.cli.main import main


def mlfn_json(capsys: Any, *argv: str) -> dict[str, Any]:
    """Run the real `mlfn` entry point with --json and return its parsed stdout."""
    capsys.readouterr()
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    value: dict[str, Any] = json.loads(out)
    return value


def layer_members(blob: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.read_bytes()))) as tar:
        return tar.getmembers()


def run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{cmd[0]} failed: {proc.stderr}"
    return proc.stdout
