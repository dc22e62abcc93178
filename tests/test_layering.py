"""Dependencies point one way: cli -> infra -> runtime. The runtime never imports the control plane."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTROL_PLANE = ("boto3", "botocore", "aws_cdk", "constructs", "cdk_nag", "moto", "mlfn.cli", "mlfn.infra")
FORBIDDEN = {
    "runtime_layer": CONTROL_PLANE,
    "infra": ("mlfn.cli", "moto"),
}


PACKAGES = {"runtime_layer": "mlfn.runtime", "infra": "mlfn.infra", "cli": "mlfn.cli"}


def imported_modules(path: Path, package: list[str]) -> set[str]:
    """Absolute module names a file imports; relative imports resolved against the file's `package` parts."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)]
            if node.level - 1 >= len(package) - 1:  # would climb out of mlfn.<package>
                names.add("<relative import beyond its package>")
            else:
                names.add(".".join([*base, *([node.module] if node.module else [])]))
    return names


def package_of(path: Path) -> list[str]:
    folder = path.relative_to(ROOT).parts[0]
    return [*PACKAGES[folder].split("."), *path.parent.relative_to(ROOT / folder).parts]


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_import_points_back_up_the_stack(folder: str) -> None:
    offenders = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in imported_modules(path, package_of(path)):
            if name.startswith("<") or any(name == f or name.startswith(f + ".") for f in FORBIDDEN[folder]):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import boto3\nfrom mlfn.cli.main import main\nfrom ..x import y\nfrom ...z import w\n")
    found = imported_modules(bad, ["mlfn", "runtime", "codecs"])
    assert found == {"boto3", "mlfn.cli.main", "mlfn.runtime.x", "<relative import beyond its package>"}
