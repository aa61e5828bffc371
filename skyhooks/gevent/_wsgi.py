"""The webhook as a WSGI application, and a pywsgi server that answers without delay."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from gevent import pywsgi

from ..core.errors import BadRequest
from ..core.protocol import Response, error_response
from ._registry import Registry

StartResponse = Callable[..., Any]


class WebhookApp:
    """A WSGI application that treats every request it is given as a webhook request.

    >>> WSGIServer(("0.0.0.0", 8001), WebhookApp(registry)).serve_forever()

    Mount it at the path of the registry's URL with any WSGI dispatcher. It
    reads at most ``registry.max_body_size + 1`` bytes of any body.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._limit = registry.max_body_size  # fixed when the registry is made

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # One function for the usual request: each Python call on this path
        # costs 500-1,000 instructions (callgrind), against ~28,000 for the
        # whole of the benchmarks' bare handler.
        limit = self._limit
        declared = environ.get("CONTENT_LENGTH")
        size = _content_length(declared) if declared is None or not declared.isdecimal() else int(declared)
        if size is not None and size > limit:
            response = self.registry.refuse_size(size)
            if response is not None:  # (it is: the size is over the limit)
                return _closing(response, start_response)
        try:
            body = environ["wsgi.input"].read(limit + 1 if size is None else size)
        except (OSError, ValueError) as exc:  # pywsgi's bad chunked encoding is an OSError
            response = error_response(BadRequest(f"the request body could not be read: {exc}"))
            return _closing(response, start_response)
        get = environ.get
        # Only what the core reads, each of the four present ("" when missing,
        # which the core refuses as missing), so the core never has to look
        # further. CONTENT_TYPE wins over HTTP_CONTENT_TYPE, as in WSGI.
        core_headers = {
            "content-type": get("CONTENT_TYPE") or get("HTTP_CONTENT_TYPE", ""),
            "webhook-id": get("HTTP_WEBHOOK_ID", ""),
            "webhook-timestamp": get("HTTP_WEBHOOK_TIMESTAMP", ""),
            "webhook-signature": get("HTTP_WEBHOOK_SIGNATURE", ""),
        }
        response = self.registry.handle_request(environ["REQUEST_METHOD"], core_headers, body)
        if len(body) > limit:
            return _closing(response, start_response)
        # A list of our own: a server may add to it.
        headers = list(response.header_pairs)
        start_response(_STATUS_LINES.get(response.status) or f"{response.status} Unknown", headers)
        return [response.body]


class WSGIServer(pywsgi.WSGIServer):  # type: ignore[misc]
    """``gevent.pywsgi.WSGIServer`` with TCP_NODELAY on every connection.

    Without it, a client that writes headers and body separately (urllib3,
    requests) waits ~40 ms per request for Nagle's algorithm and delayed ACKs.
    """

    def handle(self, sock: socket.socket, address: Any) -> None:
        with contextlib.suppress(OSError):  # not TCP: a Unix socket has no Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def _closing(response: Response, start_response: StartResponse) -> Iterable[bytes]:
    """Answer, and have the server close the connection: what is left of the
    body (unread, over the limit) would be parsed as the next request."""
    start_response(
        _STATUS_LINES.get(response.status) or f"{response.status} Unknown",
        [*response.header_pairs, ("Connection", "close")],
    )
    return [response.body]


def _content_length(declared: str | None) -> int | None:
    """The declared body length, or None when absent (chunked) or malformed:
    then the body is read up to the limit and looked at."""
    try:
        length = int(declared or "")
    except ValueError:
        return None
    return length if length >= 0 else None


# Built once: an HTTPStatus lookup per answer costs about a microsecond.
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}
