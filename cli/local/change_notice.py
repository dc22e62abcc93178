"""The control plane tells the data plane at once that something it serves changed, instead of waiting for the
reconciler's next poll (about a second): an alias's version or weights (a rollback), a function's configuration,
its concurrency, its deletion, a Function URL, a SageMaker endpoint.

`moto_adapter.notify_changes(notifier.changed)` calls `changed()` after every successful write request to the
Lambda or SageMaker API, once moto has committed it. `changed()` asks one background thread to POST `/reconcile` to
the data plane's internal API (loopback, its address from the state directory) and waits at most `wait_s` for the
data plane to say it applied a pass that read the control plane after the change; then it returns whatever happened,
so a request to the control plane is never held longer than `wait_s` by the data plane (nor at all when no data
plane runs). Changes made while a pass is on its way share the next one. The reconciler's periodic poll stays the
fallback (for changes made any other way, e.g. CloudFormation's, or a data plane that did not answer in time).
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class NoticeSettings:
    wait_s: float = 1.0  # the longest a control-plane request waits for the data plane to apply its change
    post_timeout_s: float = 30.0  # the notifier thread's own bound on one POST (it blocks no request)


SETTINGS = NoticeSettings()


class Notifier:
    """Coalescing, bounded notices to the data plane whose internal API `address()` returns (None: none runs)."""

    def __init__(self, address: Callable[[], str | None]) -> None:
        self.address = address
        self._cond = threading.Condition()
        self._requested = 0  # changes noticed
        self._sent = 0  # the last change a POST covers
        self._applied = 0  # the last change the data plane answered for (or gave up on)
        self._ok_through = 0  # the last change a successful POST covered
        self._thread: threading.Thread | None = None
        self.failures = 0  # notices the data plane did not answer (the poll applies those changes)

    def changed(self) -> bool:
        """Notice one change; True once the data plane applied it, False when none runs or it did not answer
        within `SETTINGS.wait_s`."""
        if not self.address():
            return False
        with self._cond:
            self._requested += 1
            mine = self._requested
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="mlfn-change-notice", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            answered = self._cond.wait_for(lambda: self._applied >= mine, timeout=SETTINGS.wait_s)
            return answered and self._ok_through >= mine

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._requested > self._sent)
                covers = self._sent = self._requested
            ok = self._post()
            with self._cond:
                self._applied = covers
                if ok:
                    self._ok_through = covers
                else:
                    self.failures += 1
                self._cond.notify_all()

    def _post(self) -> bool:
        address = self.address()
        if not address:
            return False
        request = urllib.request.Request(f"{address}/reconcile", data=b"{}", method="POST",
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=SETTINGS.post_timeout_s) as response:
                return bool(json.loads(response.read() or b"{}").get("reconciled"))
        except (OSError, ValueError):  # refused, timed out, or not JSON: the periodic poll catches up
            return False
