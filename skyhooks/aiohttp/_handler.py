"""The webhook endpoint as an aiohttp handler."""

from __future__ import annotations

import functools

from aiohttp import web

from ..asyncio import Registry

__all__ = ["WebhookHandler"]


# A partial of a coroutine function is a coroutine function to aiohttp (inspect sees through
# partials); any other callable object would be wrapped, with a DeprecationWarning.
class WebhookHandler(functools.partial):  # type: ignore[type-arg]
    """Webhook endpoint: ``app.router.add_route("*", "/skyhooks", WebhookHandler(registry))``.

    Every method is routed here, so a GET gets the core's JSON 405, not
    aiohttp's. A ``Content-Length`` over the limit is answered 413 before the
    body is read (after the ``100 Continue`` aiohttp sends itself, unless the
    route has an ``expect_handler``); the body is streamed (aiohttp's
    ``client_max_size`` does not apply: the registry's ``max_body_size`` does)
    and refused the moment it passes the limit.
    """

    def __new__(cls, registry: Registry) -> WebhookHandler:
        return super().__new__(cls, _handle, registry)

    @property
    def registry(self) -> Registry:
        return self.args[0]  # type: ignore[no-any-return]


async def _handle(registry: Registry, request: web.Request) -> web.Response:
    reader = registry.reader(request.method, request.headers.get)
    response = reader.refusal
    if response is None:
        async for chunk in request.content.iter_any():
            if (response := reader.feed(chunk)) is not None:
                break
        else:
            response = reader.finish()
    assert response is not None  # finish() answers whatever was not refused
    # Not closed even where the reader asks (response.close): aiohttp reads on and drops
    # what is left of the body for a while ("lingering") and closes if it is still coming,
    # so its bytes are never read as a request, and the sender is not reset before it
    # has read the answer, as it may be by an immediate close with bytes unread.
    return web.Response(status=response.status, body=response.body, headers=response.headers)
