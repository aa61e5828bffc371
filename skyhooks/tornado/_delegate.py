"""The webhook endpoint as a Tornado routing target of its own, without a RequestHandler."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from tornado import httputil

from ..core.protocol import Response
from ._headers import core_headers
from ._registry import Registry

__all__ = ["WebhookDelegate"]

_REASONS = {status.value: status.phrase for status in HTTPStatus}

log = logging.getLogger("skyhooks.tornado")


class WebhookDelegate(httputil.HTTPServerConnectionDelegate):
    """Webhook endpoint: ``Application([(r"/skyhooks", WebhookDelegate(registry)), ...])``.

    The same answers as :class:`WebhookHandler` (an oversized body refused from
    its headers, before it is read; JSON errors for every method), for about
    a third less CPU per webhook: Tornado hands it the request's parts as they
    are read, with no ``RequestHandler`` made and finished around each one.
    What a ``RequestHandler`` adds is left out with it: an access-log line per
    request (skyhooks logs refusals at INFO on ``skyhooks.registry``), output
    transforms, subclass hooks. Use ``WebhookHandler`` where you need those.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return _WebhookRequest(self.registry, request_conn)


class _WebhookRequest(httputil.HTTPMessageDelegate):
    """One request: headers, body chunks, then the core's answer."""

    def __init__(self, registry: Registry, connection: httputil.HTTPConnection) -> None:
        self._registry = registry
        self._connection = connection
        self._chunks: list[bytes] = []
        self._size = 0
        self._answered = False
        self._method = ""
        self._headers: dict[str, str] = {}

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self._method = start_line.method
        self._headers = core_headers(headers)
        declared = self._headers.get("content-length", "")
        refusal = self._registry.refuse_size(int(declared)) if declared.isdigit() else None
        if refusal is not None:
            # Answered before the body is read: Tornado sends no "100 Continue"
            # and closes the connection rather than read what follows.
            self._respond(refusal)

    def data_received(self, chunk: bytes) -> None:
        if self._answered:
            return
        self._size += len(chunk)
        if self._size <= self._registry.max_body_size:
            self._chunks.append(chunk)
        else:  # a chunked body with no Content-Length to check earlier
            self._respond(self._registry.refuse_size(self._size))  # type: ignore[arg-type]

    def finish(self) -> None:
        if self._answered:
            return
        try:
            response = self._registry.handle_request(self._method, self._headers, b"".join(self._chunks))
        except Exception:  # a bug (bad input is answered by the core): a JSON 500, never a traceback
            log.exception("webhook request failed")
            response = Response(500, json.dumps({"status": "error", "error": "internal error"}).encode())
        self._respond(response)

    def on_connection_close(self) -> None:
        self._chunks = []

    def _respond(self, response: Response) -> None:
        self._answered = True
        headers = httputil.HTTPHeaders()
        for name, value in response.header_pairs:
            headers[name] = value
        reason = _REASONS.get(response.status, "Unknown")
        start = httputil.ResponseStartLine("HTTP/1.1", response.status, reason)
        # A HEAD answer carries the headers of the answer, never its body.
        self._connection.write_headers(start, headers, None if self._method == "HEAD" else response.body)
        self._connection.finish()
