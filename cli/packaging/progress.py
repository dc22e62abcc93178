"""Per-blob push progress on stderr, and the tally a push returns (what was uploaded, what was skipped)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .digests import short
from .oci import Descriptor

Say = Callable[[str], None]
REPORT_EVERY_S = 2.0


@dataclass
class PushReport:
    """What one push did; `uploaded` empty and `manifest_put` false mean nothing went over the wire."""

    reference: str = ""
    digest: str = ""
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0
    manifest_put: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"reference": self.reference, "digest": self.digest, "uploaded": self.uploaded,
                "skipped": self.skipped, "mounted": self.mounted, "bytes_uploaded": self.bytes_uploaded,
                "manifest_put": self.manifest_put, "seconds": round(self.seconds, 3)}


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


class Progress:
    """Prints one line per blob (skipped, mounted, or uploaded with its size and time) and, for large blobs,
    a line every couple of seconds while bytes flow. Also fills the `PushReport`."""

    def __init__(self, say: Say, report: PushReport) -> None:
        self.say, self.report = say, report
        self._label, self._total, self._sent, self._started, self._last = "", 0, 0, 0.0, 0.0

    def skip(self, desc: Descriptor, kind: str, why: str = "already there") -> None:
        self.report.skipped.append(desc.digest)
        self.say(f"  {kind} {short(desc.digest)} {_mb(desc.size):>10}  skipped ({why})")

    def mounted(self, desc: Descriptor, kind: str, source: str) -> None:
        self.report.mounted.append(desc.digest)
        self.say(f"  {kind} {short(desc.digest)} {_mb(desc.size):>10}  mounted from {source}")

    def start(self, desc: Descriptor, kind: str) -> None:
        self._label, self._total, self._sent = f"{kind} {short(desc.digest)}", desc.size, 0
        self._started = self._last = time.perf_counter()

    def advance(self, n: int) -> None:
        self._sent += n
        self.report.bytes_uploaded += n
        now = time.perf_counter()
        if now - self._last >= REPORT_EVERY_S and self._sent < self._total:
            self._last = now
            self.say(f"  {self._label} {_mb(self._sent)} of {_mb(self._total)} ({100 * self._sent // self._total}%)")

    def finish(self, digest: str) -> None:
        self.report.uploaded.append(digest)
        elapsed = time.perf_counter() - self._started
        self.say(f"  {self._label} {_mb(self._total):>10}  uploaded in {elapsed:.1f}s")
