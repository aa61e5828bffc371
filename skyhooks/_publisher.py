"""``skyhooks.Publisher``: the blocking publisher, for code with no event loop.

A Celery task, a cron script, a WSGI view. Fan-out to several URLs runs in a
thread pool over urllib3's connection pools (the transport under ``requests``,
without its per-request overhead): each instance keeps a warm keep-alive
connection per worker thread.
"""

from __future__ import annotations

import threading
import time
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

from .core import BasePublisher
from .core.delivery import Call, Effect, Gather, HTTPResult, Send, Sleep, run_sync
from .core.errors import TransportError
from .core.keys import Keys
from .core.values import DeliveryReport

__all__ = ["Publisher"]


class Publisher(BasePublisher):
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
        self._owns_store = isinstance(store, str)

    def notify(self, keys: Keys, data: Any) -> DeliveryReport:
        """Deliver *data* to every callback listening for any of *keys*."""
        return run_sync(self._flow(keys, data), self._perform)

    def close(self) -> None:
        """Close pooled connections and worker threads (and the store, if opened here)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._http.clear()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            return self._send(effect)
        if isinstance(effect, Gather):
            if len(effect.flows) == 1:  # no thread hop for the common single-instance case
                return [run_sync(effect.flows[0], self._perform)]
            return list(self._pool().map(lambda flow: run_sync(flow, self._perform), effect.flows))
        if isinstance(effect, Call):
            return effect.fn(*effect.args)
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        raise TypeError(f"unknown effect {effect!r}")

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
