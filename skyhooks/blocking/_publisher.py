"""``skyhooks.Publisher``: the blocking publisher, for code with no event loop."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..core.delivery import Backlog, run_sync
from ..core.errors import SkyhooksError
from ..core.forks import reset_in_child
from ..core.keys import Keys
from ..core.publisher import SyncPublisher
from ..core.values import DeliveryReport
from ..core.wire import EncodedMessage
from ._transport import Urllib3Transport

__all__ = ["INLINE_NOTIFIES", "Publisher"]

#: ``notify`` calls at once that each deliver in their own thread; more queue and
#: travel together (see ``Publisher.notify``; benchmarks/RESULTS.md, figure 6).
INLINE_NOTIFIES = 4


class Publisher(SyncPublisher):
    """Publish to every instance listening for a message's keys, and report.

    >>> publisher = Publisher(store="sqlite:////var/lib/app/hooks.db", secret="whsec_...")
    >>> report = publisher.notify({"account_id": 42}, {"progress": 100})
    >>> report.delivered, report.failed, report.notified

    Thread-safe: one publisher serves every thread of a process. ``notify``
    runs in the calling thread and sends over urllib3; fan-out to several
    instances runs in ``concurrency`` threads of its own. Messages for a busy
    instance, from any thread, leave together in its next POST (see
    ``max_in_flight``). Bad keys or data raise ``ValueError``, and a store that
    cannot be read :class:`skyhooks.StoreError`, before anything is sent;
    every other failure is in the report. ``max_pending`` bounds :meth:`submit`.
    """

    def __init__(self, store: Any, secret: str | bytes, *, max_pending: int = 1000, **options: Any) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        super().__init__(store, secret, **options)
        self.max_pending = max_pending
        self._after_fork()
        reset_in_child(self)

    def _after_fork(self) -> None:
        # Also in a forked child, which has none of its parent's threads (an
        # executor counting dead workers as idle would never start one) and
        # must not wait on a lock one of them held.
        self._lock = threading.Lock()
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._pending = threading.BoundedSemaphore(self.max_pending)
        self._backlog = Backlog(lambda drain: self._executor("submit").submit(drain), self._deliver)
        self._notifying = 0  # notify calls unfinished

    def notify(self, keys: Keys, data: Any) -> DeliveryReport:
        """Deliver *data* to every callback listening for any of *keys*, and report.

        Runs in the calling thread while fewer than ``INLINE_NOTIFIES`` other calls
        are unfinished; past that, the message joins :meth:`submit`'s backlog (what
        queued together leaves as one notification: one lookup, not one per thread)
        and this thread waits. The report, the errors and the wire are the same.
        """
        with self._lock:
            crowded = self._notifying >= INLINE_NOTIFIES
            self._notifying += 1
        try:
            if not crowded:
                return super().notify(keys, data)
            return self._backlog.put(self._signer.encode(keys, data)).result()  # bad input raises here
        finally:
            with self._lock:
                self._notifying -= 1

    def _default_transport(self) -> Urllib3Transport:
        return Urllib3Transport(self.concurrency)

    def submit(self, keys: Keys, data: Any) -> Future[DeliveryReport]:
        """Start delivering *data* to every callback listening for any of *keys*,
        and return at once: a ``concurrent.futures.Future`` of the report.

        At most two worker threads deliver what queued as one notification (one
        lookup, a batch per instance), so thousands of submissions cost about what
        ``notify_many`` does; one alone goes at once. Each keeps its own id and
        report. Bad keys or data raise here; an unreadable store fails the future
        with :class:`skyhooks.StoreError`. Waits while ``max_pending`` are
        unfinished; :meth:`close`, or the interpreter's exit, waits for them all.
        """
        if _greenlets_as_threads():
            raise SkyhooksError(
                "Publisher.submit needs real threads, and gevent has patched threading: "
                "use skyhooks.gevent.Publisher, whose notify blocks only the calling greenlet"
            )
        encoded = self._signer.encode(keys, data)  # bad input raises here, in the caller
        pending = self._pending
        pending.acquire()
        future = self._backlog.put(encoded)
        future.add_done_callback(lambda _: pending.release())
        return future

    def _deliver(self, messages: list[EncodedMessage]) -> list[DeliveryReport]:
        return run_sync(self._flow_of(messages), self._perform)

    def close(self) -> None:
        """Wait for what was submitted, then close worker threads and pooled
        connections (and the store, if opened here)."""
        for name in ("submit", "publish"):  # submissions first: they fan out in "publish"
            with self._lock:
                executor = self._executors.pop(name, None)
            if executor is not None:
                executor.shutdown(wait=True)
        super().close()

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any], limit: int) -> list[Any]:
        # The pool has `concurrency` threads; Gather's limit is that same number.
        pool, futures = self._executor("publish"), []
        for item in items:
            try:
                futures.append(pool.submit(fn, item))
            except RuntimeError:  # the interpreter is exiting and takes no new work: go on here
                return [f.result() for f in futures] + [fn(rest) for rest in items[len(futures) :]]
        return [f.result() for f in futures]

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _executor(self, name: str) -> ThreadPoolExecutor:
        with self._lock:
            if name not in self._executors:
                self._executors[name] = ThreadPoolExecutor(
                    self.concurrency, thread_name_prefix=f"skyhooks-{name}"
                )
            return self._executors[name]


def _greenlets_as_threads() -> bool:
    """Whether gevent has monkey-patched threading (its threads are greenlets)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))
