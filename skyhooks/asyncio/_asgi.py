"""The webhook endpoint as a plain ASGI 3 application: no framework, any ASGI server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ..core.errors import SkyhooksError
from ..core.wire import REQUEST_HEADERS
from ._registry import Registry

__all__ = ["WebhookASGI"]

_WANTED = {name.encode(): name for name in (*REQUEST_HEADERS, "content-length")}  # as ASGI names them


class WebhookASGI:
    """Webhook endpoint: ``app.add_route("/skyhooks", WebhookASGI(registry))`` (Starlette redirects
    a POST to a mount's bare path, ``/skyhooks``, to ``/skyhooks/``: mounted, the URL ends in /).
    It takes every HTTP request it is given for a webhook. A ``Content-Length`` over the limit is
    answered 413 before the body is read (so before any ``100 Continue``), a streamed body once
    past it; WebSockets are closed unaccepted. In a framework it never sees ``lifespan``: start the
    registry in the app's, ``await registry.stop()`` at shutdown. As the root app, it does both."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy: webhooks are POSTed
        else:  # as the ASGI spec asks of an app given a scope it does not know
            raise ValueError(f"WebhookASGI serves http (and lifespan) scopes, not {scope['type']!r}")

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        found = {_WANTED[n]: value.decode("latin-1") for n, value in scope["headers"] if n in _WANTED}
        reader = self.registry.reader(scope["method"], found)
        response = reader.refusal
        while response is None:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the sender left mid-body: nothing was dispatched, no one to answer
            last = not message.get("more_body", False)  # the whole body comes in one message, mostly
            response = (reader.finish if last else reader.feed)(message.get("body", b""))
        # Encoded once per Response (the usual ones are shared); after "Connection: close", it closes.
        headers = response.raw_header_pairs
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body, "more_body": response.close})
        if response.close:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(_linger(receive, 4 * self.registry.max_body_size), 2.0)
            await send({"type": "http.response.body", "body": b""})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while (await receive())["type"] == "lifespan.startup":
            try:
                self.registry.start()
            except SkyhooksError as exc:  # stopped already: it cannot listen again
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        await self.registry.stop()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})


async def _linger(receive: Any, budget: int) -> None:
    """Read and drop the rest of a refused body, up to *budget* bytes (and two seconds):
    closing with bytes unread resets the connection, and the answer may be lost with it (RFC 9112, 9.6)."""
    while budget > 0:
        message = await receive()
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return
