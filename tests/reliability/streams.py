"""A stream of messages published from several threads, every report kept."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skyhooks import DeliveryReport


@dataclass
class Sent:
    seq: int
    started: float  # time.monotonic() just before notify
    finished: float
    report: DeliveryReport | None
    error: BaseException | None = None


class Stream:
    """Publish ``count`` messages (keys from ``keys_for(seq)``) with ``threads``
    threads sharing one publisher; ``sent`` holds one :class:`Sent` per message."""

    def __init__(
        self,
        notify: Callable[[Any, Any], DeliveryReport],
        keys_for: Callable[[int], Any],
        count: int,
        threads: int = 4,
        pause: float = 0.0,
    ):
        self.notify, self.keys_for, self.count, self.pause = notify, keys_for, count, pause
        self.sent: list[Sent] = []
        self._seqs = itertools.count()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while True:
            with self._lock:
                seq = next(self._seqs)
            if seq >= self.count:
                return
            started = time.monotonic()
            try:
                report, error = self.notify(self.keys_for(seq), {"seq": seq}), None
            except Exception as exc:  # recorded, and the test asserts on it
                report, error = None, exc
            with self._lock:
                self.sent.append(Sent(seq, started, time.monotonic(), report, error))
            if self.pause:
                time.sleep(self.pause)

    def start(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), f"stream not done after {timeout}s"

    @property
    def done(self) -> int:
        with self._lock:
            return len(self.sent)

    def wait_done(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.done < count:
            assert time.monotonic() < deadline, f"only {self.done} of {count} messages sent in {timeout}s"
            time.sleep(0.01)

    def reports(self) -> list[Sent]:
        errors = [s for s in self.sent if s.error is not None]
        assert not errors, f"{len(errors)} notify calls raised, first: {errors[0].error!r}"
        return sorted(self.sent, key=lambda s: s.seq)
