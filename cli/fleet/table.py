"""The table a fleet run ends with (and its `--json` form): one row per model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FAILING = ("failed", "rolled back")


@dataclass
class Row:
    model: str
    stage: str
    target: str
    result: str  # deployed | unchanged | failed | rolled back (destroyed, answered, planned)
    url: str = ""
    seconds: float = 0.0
    stack: str = ""
    digest: str = ""
    resource: str = ""  # the failing resource (logical id and type), when CloudFormation named one
    reason: str = ""  # AWS's reason, or mlfn's one line
    steps: dict[str, float] = field(default_factory=dict)  # seconds per deploy step (build, push, synth, stack...)

    @property
    def failed(self) -> bool:
        return self.result in FAILING

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["seconds"] = round(self.seconds, 2)
        doc["steps"] = {k: round(v, 2) for k, v in self.steps.items()}
        return doc


def render(rows: list[Row], columns: tuple[str, ...] = ("model", "stage", "target", "result", "time", "url")) -> str:
    """Aligned text; each failed row is followed by a line naming its failing resource and AWS's reason."""
    cells = [[_cell(r, c) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    for row, text in zip(rows, cells, strict=True):
        lines.append("  ".join(t.ljust(w) for t, w in zip(text, widths, strict=True)).rstrip())
        if row.failed and "reason" not in columns:
            where = f"{row.resource}: " if row.resource else ""
            lines.append(f"    -> {where}{row.reason}")
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.result] = counts.get(row.result, 0) + 1
    return f"{len(rows)} model(s): " + ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))


def _cell(row: Row, column: str) -> str:
    if column == "time":
        return f"{row.seconds:.1f}s"
    return str(getattr(row, column) or "-")
