"""The Tornado publisher: the core's delivery flow over an ``AsyncHTTPClient`` of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.ioloop import IOLoop
from tornado.simple_httpclient import HTTPTimeoutError

from ..core import BasePublisher
from ..core.delivery import Gather, HTTPResult, Send, run_async
from ..core.errors import TransportError
from ..core.keys import Keys
from ..core.values import DeliveryReport
from ._http import Http1Pool

try:
    from tornado.curl_httpclient import CurlError
except ImportError:  # no pycurl
    CurlError = None  # type: ignore[assignment,misc]

__all__ = ["Publisher"]

# libcurl error codes (CURLE_*) that the core treats specially.
_CURL_KINDS = {7: "refused", 28: "timeout"}  # COULDNT_CONNECT, OPERATION_TIMEDOUT


class Publisher(BasePublisher):
    """Publish to every instance listening for a message's keys: ``report = await publisher.notify(...)``.

    Requests go over skyhooks' own small HTTP/1.1 keep-alive client on asyncio
    streams (``skyhooks/tornado/_http.py``), which cost a publisher less than
    half the CPU per POST of Tornado's curl client here. ``client_class`` picks
    an ``AsyncHTTPClient`` implementation instead (``CurlAsyncHTTPClient``, say,
    for proxies or client certificates); that client belongs to the IOLoop of
    the first ``notify``.
    """

    def __init__(
        self,
        store: Any,
        secret: str | bytes,
        *,
        client_class: type[AsyncHTTPClient] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(store, secret, **options)
        self.client_class = client_class
        self._http = Http1Pool(self.concurrency) if client_class is None else None
        self._client: AsyncHTTPClient | None = None  # made on the loop of the first notify
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="skyhooks-publisher")

    async def notify(self, keys: Keys, data: Any) -> DeliveryReport:
        """Deliver *data* to every callback listening for any of *keys*."""
        return (await run_async(self._flow([(keys, data)]), self._perform))[0]

    async def notify_many(self, messages: Iterable[tuple[Keys, Any]]) -> list[DeliveryReport]:
        """Deliver several ``(keys, data)`` messages: one lookup, one POST per
        instance (a batch where an instance gets more than one); a report per message."""
        return await run_async(self._flow(messages), self._perform)

    def close(self) -> None:
        """Close the HTTP client and store worker threads (and the store, if opened here)."""
        if self._http is not None:
            self._http.close()
        if self._client is not None:
            self._client.close()
            self._client = None
        self._executor.shutdown(wait=False)
        self._close_store()

    def _call(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return IOLoop.current().run_in_executor(self._executor, fn, *args)

    def _done(self, value: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(value)
        return future

    def _sleep(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(seconds)

    def _new_waiter(self) -> tuple[asyncio.Future[Any], Callable[[Any], None]]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def resolve(value: Any) -> None:
            if not future.done():  # a cancelled caller's future stays cancelled
                future.set_result(value)

        return future, resolve

    async def _gather(self, gather: Gather) -> list[Any]:
        if len(gather.flows) == 1:  # one instance: no workers to set up
            return [await run_async(gather.flows[0], self._perform)]
        results: list[Any] = [None] * len(gather.flows)
        queue = iter(enumerate(gather.flows))

        async def worker() -> None:
            for index, flow in queue:  # the workers share one iterator: at most `limit` flows run
                results[index] = await run_async(flow, self._perform)

        workers = min(gather.limit, len(gather.flows))
        await (worker() if workers == 1 else asyncio.gather(*(worker() for _ in range(workers))))
        return results

    async def _send(self, send: Send) -> HTTPResult:
        if self._http is not None:
            return await self._http.post(send.url, send.headers, send.body, send.timeout)
        client = self._client
        if client is None:
            assert self.client_class is not None
            client = self._client = self.client_class(force_instance=True, max_clients=self.concurrency)
        request = HTTPRequest(
            send.url, method="POST", headers=dict(send.headers), body=send.body,
            connect_timeout=send.timeout, request_timeout=send.timeout, follow_redirects=False,
        )
        try:
            # raise_error=False: any HTTP status is an answer for the core's retry policy.
            response = await client.fetch(request, raise_error=False)
        except (HTTPClientError, OSError) as exc:  # anything else is a bug: the core logs it
            raise _transport_error(exc) from exc
        return HTTPResult(response.code, response.headers, response.body)


def _transport_error(exc: HTTPClientError | OSError) -> TransportError:
    """Map what the simple and curl clients raise below HTTP to the core's kinds."""
    if CurlError is not None and isinstance(exc, CurlError):
        return TransportError(_CURL_KINDS.get(exc.errno, "error"), f"{exc.message} (curl error {exc.errno})")
    if isinstance(exc, ConnectionRefusedError):
        return TransportError("refused", str(exc))
    if isinstance(exc, (HTTPTimeoutError, TimeoutError)):
        return TransportError("timeout", str(exc))
    return TransportError("error", str(exc) or repr(exc))
