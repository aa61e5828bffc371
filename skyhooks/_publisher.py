"""``skyhooks.Publisher``: the blocking publisher, for code with no event loop.

A Celery task, a cron script, a WSGI view. Requests go over a small keep-alive
HTTP/1.1 client on blocking sockets (``skyhooks/_blocking_http.py``), one pool of
idle connections per instance shared by the calling threads; fan-out to several
instances runs in a thread pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._blocking_http import BlockingHttp1Pool
from .core.delivery import HTTPResult, Send
from .core.publisher import SyncPublisher

__all__ = ["Publisher"]


class Publisher(SyncPublisher):
    """Publish to every instance listening for a message's keys, and report.

    >>> publisher = Publisher(store="sqlite:////var/lib/app/hooks.db", secret="whsec_...")
    >>> report = publisher.notify({"account_id": 42}, {"progress": 100})
    >>> report.delivered, report.failed, report.notified

    Thread-safe: one publisher can serve every thread of a process. Raises
    ``ValueError`` (``InvalidKeysError``/``InvalidDataError``) for bad input and
    :class:`skyhooks.StoreError` when the store cannot be read, before sending
    anything; every other failure is in the report.
    """

    def __init__(self, store: Any, secret: str | bytes, **options: Any) -> None:
        super().__init__(store, secret, **options)
        self._http = BlockingHttp1Pool(self.concurrency)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def close(self) -> None:
        """Close pooled connections and worker threads (and the store, if opened here)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._http.close()
        super().close()

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any], limit: int) -> list[Any]:
        # The pool has `concurrency` threads; Gather's limit is that same number.
        return list(self._pool().map(fn, items))

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="skyhooks-publish")
            return self._executor

    def _send(self, send: Send) -> HTTPResult:
        return self._http.post(send.url, send.headers, send.body, send.timeout)
