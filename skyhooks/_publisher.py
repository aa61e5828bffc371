"""``skyhooks.Publisher``: the blocking publisher, for code with no event loop.

A Celery task, a cron script, a WSGI view. Fan-out to several URLs runs in a
thread pool over urllib3's connection pools (the transport under ``requests``,
without its per-request overhead): each instance keeps a warm keep-alive
connection per worker thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from .core.delivery import HTTPResult, Send
from .core.errors import TransportError
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
        self._http = urllib3.PoolManager(num_pools=256, maxsize=self.concurrency, retries=False)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def close(self) -> None:
        """Close pooled connections and worker threads (and the store, if opened here)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._http.clear()
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
        timeout = urllib3.Timeout(connect=send.timeout, read=send.timeout)
        for reused in (True, False):
            try:
                response = self._http.request(
                    "POST",
                    send.url,
                    body=send.body,
                    headers=dict(send.headers),
                    timeout=timeout,
                    redirect=False,
                )
                return HTTPResult(response.status, response.headers, response.data)
            except ProtocolError as exc:
                # Most often a keep-alive connection the instance closed while
                # idle; one immediate retry on a fresh connection is safe because
                # receivers drop duplicate webhook-ids.
                if reused:
                    continue
                raise TransportError("error", str(exc)) from exc
            except NewConnectionError as exc:
                kind = (
                    "refused"
                    if isinstance(exc.__cause__ or exc.__context__, ConnectionRefusedError)
                    else "error"
                )
                raise TransportError(kind, str(exc)) from exc
            except (ConnectTimeoutError, ReadTimeoutError) as exc:
                raise TransportError("timeout", f"no answer within {send.timeout:.1f}s") from exc
            except (HTTPError, OSError) as exc:
                raise TransportError("error", str(exc)) from exc
        raise AssertionError("unreachable")  # pragma: no cover
