"""The gevent Publisher: skyhooks' socket HTTP/1.1 client on gevent's sockets, fan-out in a greenlet pool."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import gevent
import gevent.socket
import gevent.ssl
from gevent.event import AsyncResult
from gevent.pool import Pool

from .._blocking_http import BlockingHttp1Pool
from ..core.delivery import HTTPResult, Send
from ..core.publisher import SyncPublisher
from ._hub import store_caller

T = TypeVar("T")


class Publisher(SyncPublisher):
    """Publish to every instance listening for a message's keys, from a greenlet.

    >>> report = publisher.notify({"account_id": 42}, {"progress": 100})  # blocks this greenlet only

    Keeps up to ``concurrency`` idle keep-alive connections per instance, on
    gevent's own sockets (cooperative whether or not ``socket`` is patched);
    fans out to at most ``concurrency`` URLs at once. Call it from greenlets of
    one hub (not from the hub itself).
    """

    def __init__(self, store: Any, secret: str | bytes, **options: Any) -> None:
        super().__init__(store, secret, **options)
        self._call_store = store_caller(self.store)
        self._http = BlockingHttp1Pool(self.concurrency, sockets=gevent.socket, tls=gevent.ssl)

    def close(self) -> None:
        """Close pooled connections (and the store, if opened here)."""
        self._http.close()
        super().close()

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any], limit: int) -> list[Any]:
        return list(Pool(limit).map(fn, items))

    # A SQLite read on the hub beats a round trip through gevent's thread pool.
    _reads_inline = True

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return self._call_store(lambda: fn(*args))  # type: ignore[no-any-return]

    def _sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def _new_waiter(self) -> tuple[AsyncResult, Callable[[Any], None]]:
        # Not the threading future of SyncPublisher: this must not block the hub
        # even when threading is not monkey-patched.
        waiter = AsyncResult()
        return waiter, waiter.set

    def _wait(self, waiter: AsyncResult) -> Any:
        return waiter.get()

    def _send(self, send: Send) -> HTTPResult:
        return self._http.post(send.url, send.headers, send.body, send.timeout)
