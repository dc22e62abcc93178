"""Forward sandbox logs to the emulator's CloudWatch Logs (moto), so `mlfn logs NAME --local` reads them there.

    forward = CloudWatchLogsForwarder("http://127.0.0.1:<moto port>")
    plane = DataPlane(state, log_forward=forward)   # ... forward.close() after plane.stop()

Events are queued by the data plane's loop and sent from one background thread in batches (every `flush_s`), so a slow
control plane never delays an invocation. Log groups and streams are created on first use, as Lambda does.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import defaultdict
from typing import Any

Event = tuple[str, str, int, str]
MAX_BATCH = 10_000  # put_log_events' limit of events per call


class CloudWatchLogsForwarder:
    """A `Forward` callable for `FileLogSink` that puts events into CloudWatch Logs at `endpoint_url`."""

    def __init__(self, endpoint_url: str, *, region: str = "us-east-1", flush_s: float = 0.5,
                 access_key: str = "testing", secret_key: str = "testing") -> None:
        import boto3

        self._client: Any = boto3.client("logs", endpoint_url=endpoint_url, region_name=region,
                                         aws_access_key_id=access_key, aws_secret_access_key=secret_key)
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._flush_s = flush_s
        self._known: set[tuple[str, str]] = set()
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="mlfn-cloudwatch-logs", daemon=True)
        self._thread.start()

    def __call__(self, group: str, stream: str, timestamp_ms: int, message: str) -> None:
        self._queue.put((group, stream, timestamp_ms, message))

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        done = False
        while not done:
            batch: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
            try:
                item = self._queue.get(timeout=self._flush_s)
                while True:
                    if item is None:
                        done = True
                        break
                    group, stream, ts, message = item
                    batch[(group, stream)].append({"timestamp": ts, "message": message or " "})
                    item = self._queue.get_nowait()
            except queue.Empty:
                pass
            for (group, stream), events in batch.items():
                self._send(group, stream, events)

    def _send(self, group: str, stream: str, events: list[dict[str, Any]]) -> None:
        try:
            if (group, stream) not in self._known:
                exists = self._client.exceptions.ResourceAlreadyExistsException
                with contextlib.suppress(exists):
                    self._client.create_log_group(logGroupName=group)
                with contextlib.suppress(exists):
                    self._client.create_log_stream(logGroupName=group, logStreamName=stream)
                self._known.add((group, stream))
            events.sort(key=lambda e: e["timestamp"])
            for start in range(0, len(events), MAX_BATCH):
                self._client.put_log_events(logGroupName=group, logStreamName=stream,
                                            logEvents=events[start:start + MAX_BATCH])
        except Exception:  # the control plane may be gone; the files under <state>/logs still have everything
            self.errors += 1
