"""Spotting a message seen before (a retried POST, a replayed request)."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ..forks import reset_in_child
from .signing import TOLERANCE

__all__ = ["RecentIds"]


class RecentIds:
    """A bounded memory of message ids seen recently, to spot duplicates.

    An id is remembered for *window* seconds (twice the timestamp tolerance: a
    replay is only accepted while its timestamp is within tolerance, on either
    side of now) and at most *max_size* ids are kept, oldest forgotten first, so
    memory stays bounded under any load. Thread-safe: check-and-record is atomic.
    """

    def __init__(
        self,
        window: float = 2 * TOLERANCE,
        max_size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        *,
        thread_safe: bool = True,
    ) -> None:
        """*thread_safe=False* leaves the lock out, for an owner that only ever
        calls from one thread: a registry, on its loop's (or hub's) thread, where a
        lock costs every request (a monkey-patched one, under gevent, the most)."""
        self._window = window
        self._max_size = max_size
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._oldest = math.inf  # when the oldest id expires: no sweep before then
        self._lock: threading.Lock | contextlib.nullcontext[None] = (
            threading.Lock() if thread_safe else contextlib.nullcontext()
        )
        if thread_safe:
            reset_in_child(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a thread of the parent's may have held it

    def check_and_add(self, message_id: str) -> bool:
        """Record *message_id*; return True if it had been seen already."""
        with self._lock:
            now = self._clock()
            seen = self._seen
            if now >= self._oldest or len(seen) >= self._max_size:
                # Full: forget the oldest 1% at once, not one id per request from then on.
                keep = self._max_size - max(1, self._max_size // 100)
                while seen:
                    oldest, expires = next(iter(seen.items()))
                    if expires > now and len(seen) <= keep:
                        break
                    del seen[oldest]
                self._oldest = next(iter(seen.values())) if seen else math.inf
            if message_id in seen:
                return True
            expires = now + self._window
            if not seen:
                self._oldest = expires
            seen[message_id] = expires
            return False

    def __len__(self) -> int:
        return len(self._seen)
