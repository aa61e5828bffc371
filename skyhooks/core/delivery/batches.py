"""Splitting what one URL gets into batches a receiver accepts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..wire import MAX_BATCH, EncodedMessage

__all__ = ["BATCH_BYTES", "split", "weight"]

#: A batch stays under this many bytes, well inside a receiver's default 1 MiB limit.
BATCH_BYTES = 512 * 1024


def weight(messages: Iterable[EncodedMessage]) -> int:
    """About how many bytes *messages* take in a batch."""
    return sum(len(m.fields) + len(m.id) + 16 for m in messages)


def split(indexes: list[int], messages: Sequence[EncodedMessage]) -> list[list[int]]:
    """Split one URL's messages into batches of at most MAX_BATCH messages and
    about BATCH_BYTES; a message bigger than that travels alone."""
    if len(indexes) == 1:
        return [indexes]
    batches: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i in indexes:
        more = weight((messages[i],))
        if current and (len(current) >= MAX_BATCH or size + more > BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(i)
        size += more
    if current:
        batches.append(current)
    return batches
