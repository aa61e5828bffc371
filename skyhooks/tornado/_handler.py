"""The webhook endpoint as a Tornado ``RequestHandler``."""

from __future__ import annotations

import json
from typing import Any

from tornado.web import RequestHandler, stream_request_body

from ..core.protocol import Response
from ._headers import core_headers
from ._registry import Registry

__all__ = ["WebhookHandler"]


# Streamed, so an oversized body is refused from its headers, before it is read.
@stream_request_body
class WebhookHandler(RequestHandler):
    """Webhook endpoint: ``(r"/skyhooks", WebhookHandler, {"registry": registry})``."""

    def initialize(self, registry: Registry) -> None:
        self.registry = registry
        self._chunks: list[bytes] = []
        self._size = 0
        self._core_headers: dict[str, str] = {}

    def prepare(self) -> None:
        self._core_headers = core_headers(self.request.headers)
        declared = self._core_headers.get("content-length", "")
        refusal = self.registry.refuse_size(int(declared)) if declared.isdigit() else None
        if refusal is not None:
            # Answering before reading also keeps Tornado from sending "100 Continue".
            self._respond(refusal)

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= self.registry.max_body_size:
            self._chunks.append(chunk)
        elif not self._finished:  # a chunked body with no Content-Length to check earlier
            self._respond(self.registry.refuse_size(self._size))  # type: ignore[arg-type]

    def check_xsrf_cookie(self) -> None:
        """Webhooks carry a signature, not a browser's cookie: the app's xsrf_cookies does not apply."""

    def _handle(self, *args: Any) -> None:
        # Every method goes to the core, so a GET gets its JSON 405, not Tornado's HTML one.
        if not self._finished:  # not already refused as too large while streaming
            body = b"".join(self._chunks)
            self._respond(self.registry.handle_request(self.request.method or "", self._core_headers, body))

    get = post = put = patch = delete = head = options = _handle

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """What Tornado refuses itself answers JSON in the core's shape too, never HTML."""
        if status_code == 405:  # a method Tornado does not know: let the core say why, with Allow
            response = self.registry.handle_request(self.request.method or "", self.request.headers, b"")
        else:  # only a bug gets here: our code answers every bad input itself
            response = Response(status_code, json.dumps({"status": "error", "error": self._reason}).encode())
        self._respond(response)

    def _respond(self, response: Response) -> None:
        self.set_status(response.status)
        for name, value in response.headers.items():
            self.set_header(name, value)
        self.finish(response.body)
