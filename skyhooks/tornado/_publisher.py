"""The Tornado publisher: the asyncio publisher, sending with Tornado's ``AsyncHTTPClient``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.simple_httpclient import HTTPTimeoutError, SimpleAsyncHTTPClient
from zope.interface import implementer

from .. import asyncio as skyhooks_asyncio
from ..core.delivery import HTTPResult, ITransport, transport_errors
from ..core.errors import TransportError
from ..core.forks import reset_in_child

ClientClass = type[AsyncHTTPClient]

try:  # curl when pycurl imports (the tornado extra brings it), else Tornado's own client
    from tornado.curl_httpclient import CurlAsyncHTTPClient, CurlError

    _DEFAULT_CLIENT: ClientClass = CurlAsyncHTTPClient
except ImportError:
    CurlError = None  # type: ignore[assignment,misc]
    _DEFAULT_CLIENT = SimpleAsyncHTTPClient

__all__ = ["HTTPClientTransport", "Publisher"]

# What the simple client raises below HTTP, most specific first.
_KINDS = {
    ConnectionRefusedError: "refused",
    HTTPTimeoutError: "timeout",
    TimeoutError: "timeout",
    HTTPClientError: "error",
    OSError: "error",
}
# curl says why by number: CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT.
_CURL_KINDS = {7: "refused", 28: "timeout"}


class Publisher(skyhooks_asyncio.Publisher):
    """Publish to every instance listening for a message's keys: ``report = await publisher.notify(...)``.

    Sends with Tornado's ``AsyncHTTPClient``: ``CurlAsyncHTTPClient`` when
    pycurl is installed (the ``tornado`` extra brings it), else
    ``SimpleAsyncHTTPClient``; ``client_class`` picks another. The client is
    made on the loop of the first ``notify``, with ``concurrency`` requests at most.
    """

    def __init__(
        self, store: Any, secret: str | bytes, *, client_class: ClientClass | None = None, **options: Any
    ) -> None:
        self.client_class = client_class or _DEFAULT_CLIENT
        super().__init__(store, secret, **options)

    def _default_transport(self) -> HTTPClientTransport:
        return HTTPClientTransport(self.client_class, self.concurrency)


@implementer(ITransport)
class HTTPClientTransport:
    """POSTs through an ``AsyncHTTPClient`` of *client_class*, made anew on each new loop."""

    def __init__(self, client_class: ClientClass, max_clients: int) -> None:
        self.client_class, self.max_clients = client_class, max_clients
        self._client: AsyncHTTPClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        reset_in_child(self)

    def _after_fork(self) -> None:
        # Forgotten, not closed: its connections are the parent's too, and
        # closing them here would end them there (a TLS goodbye, say).
        self._client = self._loop = None

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> HTTPResult:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # a client works on its own loop only
            self.close()
            self._client = self.client_class(force_instance=True, max_clients=self.max_clients)
            self._loop = loop
        request = HTTPRequest(url, "POST", {**headers}, body, follow_redirects=False)
        request.connect_timeout = request.request_timeout = timeout
        with transport_errors(_KINDS):
            try:
                # raise_error=False: any HTTP status is an answer for the core's retry policy.
                response = await self._client.fetch(request, raise_error=False)
            except HTTPClientError as exc:
                if CurlError is None or not isinstance(exc, CurlError):
                    raise
                kind = _CURL_KINDS.get(exc.errno, "error")
                raise TransportError(kind, f"{exc.message} (curl error {exc.errno})") from exc
        return HTTPResult(response.code, response.headers, response.body)

    def close(self) -> None:
        """Close the client; call it on its loop's thread, or once that loop has ended."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            client.close()
