"""The demo server on Starlette under uvicorn: ``python -m skyhooks.demo.asgi_server --store URL --secret S``.

Starlette rather than FastAPI: the demo needs routes, a streaming response and a
lifespan, which are Starlette's; FastAPI, built on it, adds request validation and
OpenAPI, which four routes do not use (``examples/fastapi`` is a FastAPI app).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..asyncio import Registry, WebhookASGI
from ..core.values import Message
from ._common import (
    KEEPALIVE_SECONDS,
    SSE_HEADERS,
    SSE_KEEPALIVE,
    SSE_OPEN,
    SSE_READY,
    Workers,
    account_keys,
    announce,
    json_body,
    page,
    parse_args,
    sse_event,
    webhook_url,
)

#: How often the server's exit flag is looked at (uvicorn's own main loop looks as often).
EXIT_POLL_SECONDS = 0.1


class DemoApp:
    """The page, the streams, run-task and the webhook, as one Starlette app."""

    def __init__(self, registry: Registry, workers: Workers, host: str, port: int) -> None:
        self.registry, self.workers = registry, workers
        self.host, self.port = host, port
        self.server: uvicorn.Server | None = None
        self.streams: set[asyncio.Queue[Message | None]] = set()
        self.app = Starlette(
            routes=[
                Route("/", self.page),
                Route("/events", self.events),
                Route("/run-task", self.run_task, methods=["POST"]),
                # A Route, not a Mount: Starlette answers a POST to a Mount's bare path
                # ("/skyhooks") with a redirect to "/skyhooks/", which no publisher follows.
                Route("/skyhooks", WebhookASGI(registry)),
            ],
            lifespan=self.lifespan,
        )

    async def page(self, request: Request) -> Response:
        return HTMLResponse(page("asgi"))

    async def events(self, request: Request) -> Response:
        try:
            keys = account_keys(request.query_params.get("account_id"))
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        return StreamingResponse(self.stream(keys), headers=SSE_HEADERS)

    async def stream(self, keys: dict[str, str]) -> AsyncIterator[bytes]:
        """SSE chunks while the browser is connected. Starlette cancels this generator
        when the browser leaves; a ``None`` in the queue ends it when the server stops,
        which otherwise waits for every open stream to finish."""
        queue: asyncio.Queue[Message | None] = asyncio.Queue()
        callback = queue.put_nowait  # bound once, so unregister gets the same callable
        self.streams.add(queue)
        yield SSE_OPEN
        try:
            await self.registry.register(keys, callback)
            yield SSE_READY
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    yield SSE_KEEPALIVE
                    continue
                if message is None:
                    return
                yield sse_event(message)
        finally:  # the browser left, or the server is shutting down
            self.streams.discard(queue)
            self.registry.unregister(keys, callback)

    async def run_task(self, request: Request) -> Response:
        try:
            keys = account_keys(request.query_params.get("account_id"))
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        task = self.workers.start(keys["account_id"])
        return Response(json_body(task=task), status_code=202, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.registry.start()
        watcher = asyncio.ensure_future(self.end_streams_on_exit())
        announce(self.host, self.port)  # the socket listens already: connections wait in its backlog
        try:
            yield
        finally:
            watcher.cancel()
            await asyncio.to_thread(self.workers.stop)
            await self.registry.stop()  # removes this URL from the store (bounded by stop_timeout)

    async def end_streams_on_exit(self) -> None:
        """Once uvicorn begins to stop (its public ``should_exit``), end every open stream."""
        while self.server is None or not self.server.should_exit:
            await asyncio.sleep(EXIT_POLL_SECONDS)
        for queue in list(self.streams):
            queue.put_nowait(None)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket for uvicorn, bound before the app is built (port 0 picks the port
    the registry's URL names). Made with ``IPPROTO_TCP``, not ``socket.create_server``'s 0:
    asyncio sets ``TCP_NODELAY`` on accepted connections only when their protocol says TCP,
    and without it the second part of each response waits for the peer's delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def main() -> None:
    args = parse_args("asgi")
    sock = listen(args.host, args.port)
    port = sock.getsockname()[1]
    registry = Registry(url=webhook_url(args.host, port), store=args.store, secret=args.secret, ttl=args.ttl)
    demo = DemoApp(registry, Workers(args.store, args.secret), args.host, port)
    config = uvicorn.Config(
        demo.app, lifespan="on", log_level="warning", access_log=False, timeout_graceful_shutdown=5
    )
    demo.server = uvicorn.Server(config)
    # uvicorn stops gracefully on SIGINT and SIGTERM, then raises the signal again for
    # the handler it found; by then the demo server is done, so that handler does nothing.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    asyncio.run(demo.server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
