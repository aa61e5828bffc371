"""The webhook endpoint as a Tornado routing target of its own, without a RequestHandler."""

from __future__ import annotations

from http.client import responses
from typing import Any

from tornado import httputil

from ..asyncio import Registry
from ..core.wire import RequestReader, Response

__all__ = ["WebhookDelegate"]


class WebhookDelegate(httputil.HTTPServerConnectionDelegate):
    """Webhook endpoint: ``Application([(r"/skyhooks", WebhookDelegate(registry)), ...])``.

    The same answers as :class:`WebhookHandler`, for less CPU per webhook:
    Tornado hands it the request's parts as they are read, with no
    ``RequestHandler`` made and finished around each one. What a
    ``RequestHandler`` adds is left out with it: an access-log line per request
    (skyhooks logs refusals at INFO on ``skyhooks.registry``), output
    transforms, subclass hooks. Use ``WebhookHandler`` where you need those.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> _WebhookRequest:
        return _WebhookRequest(self.registry, request_conn)


class _WebhookRequest(httputil.HTTPMessageDelegate):
    """One request: headers, body chunks, then the core's answer, through a RequestReader."""

    _reader: RequestReader

    def __init__(self, registry: Registry, connection: httputil.HTTPConnection) -> None:
        self._registry, self._connection = registry, connection

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> None:  # a RequestStartLine
        self._reader = self._registry.reader(start_line.method, headers.get)
        if self._reader.refusal is not None:
            # Answered before the body is read: Tornado sends no "100 Continue"
            # and closes the connection rather than read what follows.
            self._respond(self._reader.refusal)

    def data_received(self, chunk: bytes) -> None:
        if (refusal := self._reader.feed(chunk)) is not None:
            self._respond(refusal)

    def finish(self) -> None:
        if (response := self._reader.finish()) is not None:
            self._respond(response)

    def _respond(self, response: Response) -> None:
        status = response.status
        start = httputil.ResponseStartLine("HTTP/1.1", status, responses.get(status, "Unknown"))
        body = None if self._reader.method == "HEAD" else response.body  # HEAD: the headers alone
        self._connection.write_headers(start, httputil.HTTPHeaders(dict(response.header_pairs)), body)
        self._connection.finish()
