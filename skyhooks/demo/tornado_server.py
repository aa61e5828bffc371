"""The demo server on Tornado: ``python -m skyhooks.demo.tornado_server --store URL --secret S``."""

from __future__ import annotations

import asyncio
import signal

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from ..core.values import Message
from ..tornado import Registry, WebhookDelegate
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


class PageHandler(RequestHandler):
    def get(self) -> None:
        self.finish(page("tornado"))


class EventsHandler(RequestHandler):
    """An SSE stream holding a callback for one account while the browser is connected."""

    def initialize(self, registry: Registry) -> None:
        self.registry = registry
        self.closed = asyncio.Event()

    async def get(self) -> None:
        try:
            keys = account_keys(self.get_query_argument("account_id", None))
        except ValueError as exc:
            self.send_error(400, reason=str(exc))
            return
        for name, value in SSE_HEADERS.items():
            self.set_header(name, value)
        self.send(SSE_OPEN)
        try:
            await self.registry.register(keys, self.on_message)
            self.send(SSE_READY)
            while not self.closed.is_set():
                try:
                    await asyncio.wait_for(self.closed.wait(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    self.send(SSE_KEEPALIVE)
        except asyncio.CancelledError:
            pass  # asyncio.run ending the server: close the stream instead of answering 500
        finally:  # the browser left, or the server is shutting down
            self.registry.unregister(keys, self.on_message)

    def on_message(self, message: Message) -> None:
        if not self.closed.is_set():
            self.send(sse_event(message))

    def send(self, chunk: bytes) -> None:
        self.write(chunk)
        # A browser gone mid-write is noticed by on_connection_close; the flush's
        # own StreamClosedError is expected and retrieved here so it is not logged.
        self.flush().add_done_callback(lambda done: done.exception())

    def on_connection_close(self) -> None:
        self.closed.set()


class RunTaskHandler(RequestHandler):
    def initialize(self, workers: Workers) -> None:
        self.workers = workers

    def post(self) -> None:
        try:
            keys = account_keys(self.get_query_argument("account_id", None))
        except ValueError as exc:
            self.send_error(400, reason=str(exc))
            return
        self.set_status(202)
        self.set_header("Content-Type", "application/json")
        self.finish(json_body(task=self.workers.start(keys["account_id"])))


async def main() -> None:
    args = parse_args("tornado")
    sockets = bind_sockets(args.port, args.host)
    port = sockets[0].getsockname()[1]
    registry = Registry(url=webhook_url(args.host, port), store=args.store, secret=args.secret, ttl=args.ttl)
    workers = Workers(args.store, args.secret)
    app = Application(
        [
            (r"/", PageHandler),
            (r"/events", EventsHandler, {"registry": registry}),
            (r"/run-task", RunTaskHandler, {"workers": workers}),
            (r"/skyhooks", WebhookDelegate(registry)),
        ]
    )
    server = HTTPServer(app)
    server.add_sockets(sockets)
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    registry.start()
    announce(args.host, port)
    await stopping.wait()
    server.stop()
    workers.stop()
    await registry.stop()  # removes this URL from the store (bounded by stop_timeout)


if __name__ == "__main__":
    asyncio.run(main())
