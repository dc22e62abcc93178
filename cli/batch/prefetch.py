"""Read ahead: an iterator's next items made in a thread while the caller works on the current one.

An S3 object's body is read while the model scores the lines already read (the socket waits release the GIL),
at most `depth` chunks ahead, so memory stays a few chunks however large the object.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()
_WAIT_S = 0.1  # how often a blocked producer looks whether the consumer went away


def ahead(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """`items` in order, produced by a thread up to `depth` ahead; an error in the thread is raised here, at the
    item where it happened. Closing (or dropping) the iterator early stops the thread."""
    slots: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(slots, item, stop):
                    return
        except BaseException as exc:  # handed to the consumer, raised where it reads
            _put(slots, _Failed(exc), stop)
            return
        _put(slots, _END, stop)

    thread = threading.Thread(target=produce, name="mlfn-batch-read", daemon=True)
    thread.start()
    try:
        while (item := slots.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(slots: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put `item` once there is room; False when the consumer stopped first."""
    while not stop.is_set():
        try:
            slots.put(item, timeout=_WAIT_S)
            return True
        except queue.Full:
            continue
    return False
