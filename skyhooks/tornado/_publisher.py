"""The Tornado publisher: the core's delivery flow on Tornado's asyncio loop."""

from __future__ import annotations

from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.simple_httpclient import HTTPTimeoutError

from .._asyncio_publisher import AsyncioPublisher
from ..core.delivery import HTTPResult, Send
from ..core.errors import TransportError

try:
    from tornado.curl_httpclient import CurlError
except ImportError:  # no pycurl
    CurlError = None  # type: ignore[assignment,misc]

__all__ = ["Publisher"]

# libcurl error codes (CURLE_*) that the core treats specially.
_CURL_KINDS = {7: "refused", 28: "timeout"}  # COULDNT_CONNECT, OPERATION_TIMEDOUT


class Publisher(AsyncioPublisher):
    """Publish to every instance listening for a message's keys: ``report = await publisher.notify(...)``.

    Requests go over skyhooks' own small HTTP/1.1 keep-alive client on asyncio
    streams (``skyhooks/_asyncio_http.py``), which cost a publisher less than
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
        self._client: AsyncHTTPClient | None = None  # made on the loop of the first notify

    def close(self) -> None:
        """Close the HTTP client and store worker threads (and the store, if opened here)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        super().close()

    async def _send(self, send: Send) -> HTTPResult:
        if self.client_class is None:
            return await super()._send(send)
        client = self._client
        if client is None:
            client = self._client = self.client_class(force_instance=True, max_clients=self.concurrency)
        request = HTTPRequest(
            send.url,
            method="POST",
            headers=dict(send.headers),
            body=send.body,
            connect_timeout=send.timeout,
            request_timeout=send.timeout,
            follow_redirects=False,
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
