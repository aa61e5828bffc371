"""The gevent Publisher: geventhttpclient connection pools, fan-out in a greenlet pool."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import gevent
from gevent.event import AsyncResult
from gevent.pool import Pool
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError

from ..core.delivery import HTTPResult, Send
from ..core.errors import TransportError
from ..core.publisher import SyncPublisher
from ..core.urls import Origin, split_target
from ._hub import store_caller

T = TypeVar("T")

#: Hosts with a warm connection pool; the least recently used beyond this are closed.
MAX_HOSTS = 256


class Publisher(SyncPublisher):
    """Publish to every instance listening for a message's keys, from a greenlet.

    >>> report = publisher.notify({"account_id": 42}, {"progress": 100})  # blocks this greenlet only

    Keeps a keep-alive connection pool per instance host, ``concurrency``
    connections deep; fans out to at most ``concurrency`` URLs at once. Call it
    from greenlets of one hub (not from the hub itself).
    """

    def __init__(self, store: Any, secret: str | bytes, **options: Any) -> None:
        super().__init__(store, secret, **options)
        self._call_store = store_caller(self.store)
        self._clients: OrderedDict[Origin, HTTPClient] = OrderedDict()

    def close(self) -> None:
        """Close pooled connections (and the store, if opened here)."""
        while self._clients:
            self._clients.popitem()[1].close()
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

    def _client(self, url: str) -> tuple[HTTPClient, str]:
        origin, path = split_target(url)
        client = self._clients.get(origin)
        if client is None:
            client = HTTPClient.from_url(
                url, concurrency=self.concurrency,
                connection_timeout=self.retry.timeout, network_timeout=self.retry.timeout,
            )
            self._clients[origin] = client
            if len(self._clients) > MAX_HOSTS:
                self._clients.popitem(last=False)[1].close()
        else:
            self._clients.move_to_end(origin)
        return client, path

    def _send(self, send: Send) -> HTTPResult:
        client, path = self._client(send.url)
        # An OSError, not gevent.Timeout, so that geventhttpclient's own error
        # handling sees it and releases the pooled connection.
        expired = TimeoutError(f"no answer within {send.timeout:.1f}s")
        try:
            with gevent.Timeout(send.timeout, expired):
                for retry in (True, False):
                    try:
                        response = client.request("POST", path, body=send.body, headers=dict(send.headers))
                        body = response.read()
                        break
                    except (HTTPConnectionClosed, ConnectionResetError, BrokenPipeError):
                        # Most often a keep-alive connection the instance closed
                        # while idle; one immediate retry on a fresh connection is
                        # safe because receivers drop duplicate webhook-ids.
                        if not retry:
                            raise
        except ConnectionRefusedError as exc:
            raise TransportError("refused", str(exc)) from exc
        except TimeoutError as exc:
            raise TransportError("timeout", f"no answer within {send.timeout:.1f}s") from exc
        except (HTTPParseError, OSError, RuntimeError, ValueError) as exc:
            raise TransportError("error", str(exc) or type(exc).__name__) from exc
        headers = {name: value for name, value in response.items()}
        return HTTPResult(response.status_code, headers, body)
