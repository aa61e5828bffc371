"""The webhook endpoint as a Tornado ``RequestHandler``."""

from __future__ import annotations

import json
from http.client import responses
from typing import Any

from tornado.web import RequestHandler, stream_request_body

from ..asyncio import Registry
from ..core.wire import Response

__all__ = ["WebhookHandler"]


# Streamed, so an oversized body is refused from its headers, before it is read.
@stream_request_body
class WebhookHandler(RequestHandler):
    """Webhook endpoint: ``(r"/skyhooks", WebhookHandler, {"registry": registry})``."""

    def initialize(self, registry: Registry) -> None:
        self.registry = registry
        self._reader = registry.reader(self.request.method or "", self.request.headers.get)

    def prepare(self) -> None:
        if self._reader.refusal is not None:
            # Answering before reading also keeps Tornado from sending "100 Continue".
            self._respond(self._reader.refusal)

    def data_received(self, chunk: bytes) -> None:
        if (refusal := self._reader.feed(chunk)) is not None:
            self._respond(refusal)

    def check_xsrf_cookie(self) -> None:
        """Webhooks carry a signature, not a browser's cookie: the app's xsrf_cookies does not apply."""

    def _handle(self, *args: Any) -> None:
        # Every method goes to the core, so a GET gets its JSON 405, not Tornado's HTML one.
        if (response := self._reader.finish()) is not None:
            self._respond(response)

    get = post = put = patch = delete = head = options = _handle

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """What Tornado refuses itself answers JSON in the core's shape too, never HTML."""
        response = None
        if status_code == 405:  # a method Tornado does not know: let the core say why, with Allow
            response = self._reader.refusal or self._reader.finish()
        if response is None:  # only a bug gets here: our code answers every bad input itself
            reason = responses.get(status_code, "Unknown")
            response = Response(status_code, json.dumps({"status": "error", "error": reason}).encode())
        self._respond(response)

    def _respond(self, response: Response) -> None:
        self.set_status(response.status)
        for name, value in response.header_pairs:
            self.set_header(name, value)
        self.finish(response.body)  # (Tornado writes no body in answer to HEAD)
