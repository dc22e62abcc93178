"""docs/aws-fidelity.md is the ledger of AWS behaviours mlfn relies on: every row names its AWS source and a test
that exists, so a rule cannot be recorded without the test that proves it (or be left pointing at a removed one)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ROOT / "docs" / "aws-fidelity.md"
TEST_REF = re.compile(r"(tests/[\w/.-]+\.py)(?:::([\w]+)(?:::(\w+))?)?")


def ledger_rows() -> list[tuple[int, list[str]]]:
    """(line number, cells) of every table row under a `##` section, header and separator rows left out."""
    rows = []
    for number, line in enumerate(LEDGER.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| rule |"):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows.append((number, cells))
    return rows


def defined_names(path: Path) -> set[str]:
    """Functions and classes defined in a test module, at any depth (test classes hold methods)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}


def test_the_ledger_has_rows_in_every_section() -> None:
    text = LEDGER.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert sections, "the ledger has no sections"
    for section in sections:
        title = section.splitlines()[0]
        assert re.search(r"^\| (?!rule \|)(?!---)", section, flags=re.M), f"section {title!r} has no rows"


@pytest.mark.parametrize(("line", "cells"), ledger_rows(),
                         ids=lambda value: f"line{value}" if isinstance(value, int) else "")
def test_every_row_names_its_source_and_an_existing_test(line: int, cells: list[str]) -> None:
    where = f"docs/aws-fidelity.md:{line}"
    assert len(cells) == 4, f"{where}: expected 4 cells (rule, source, emulator, test), got {len(cells)}"
    rule, source, emulator, tests = cells
    assert rule and source and emulator, f"{where}: a cell is empty"
    refs = TEST_REF.findall(tests)
    assert refs, f"{where}: the test cell names no tests/...py file: {tests!r}"
    for path, name, method in refs:
        module = ROOT / path
        assert module.is_file(), f"{where}: {path} does not exist"
        names = defined_names(module)
        for wanted in (name, method):
            assert not wanted or wanted in names, f"{where}: {path} defines no {wanted}"
