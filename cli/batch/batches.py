"""Records grouped into calls: up to `records` per call and `max_bytes` of body (a Batch Transform job's
MultiRecord strategy fills each request up to MaxPayloadInMB the same way). A record larger than the limit goes
alone, and the model's 413 becomes its error record."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .readers import Record


def batches(records: Iterable[Record], max_records: int, max_bytes: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    size = 0
    for record in records:
        grown = size + len(record.body) + 1
        if batch and (len(batch) >= max_records or grown > max_bytes):
            yield batch
            batch, grown = [], len(record.body) + 1
        batch.append(record)
        size = grown
    if batch:
        yield batch
