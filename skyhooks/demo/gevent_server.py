"""The demo server on gevent: ``python -m skyhooks.demo.gevent_server --store URL --secret S``."""

from gevent import monkey

monkey.patch_all()

import signal  # noqa: E402 - everything else comes after the monkey-patching
import socket  # noqa: E402
from collections.abc import Callable, Iterable, Iterator  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.queue import Empty, Queue  # noqa: E402

from ..core.values import Message  # noqa: E402
from ..gevent import Registry, WebhookApp, WSGIServer  # noqa: E402
from ._common import (  # noqa: E402
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

StartResponse = Callable[..., Any]


class DemoApp:
    """The demo's WSGI application: the page, the streams, run-task and the webhook."""

    def __init__(self, registry: Registry, workers: Workers) -> None:
        self.registry, self.workers = registry, workers
        self.webhook = WebhookApp(registry)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path == "/skyhooks":
            return self.webhook(environ, start_response)
        try:
            account = parse_qs(environ.get("QUERY_STRING", "")).get("account_id", [None])[0]
            if path == "/" and method == "GET":
                return _respond(start_response, "200 OK", "text/html; charset=utf-8", page("gevent"))
            if path == "/events" and method == "GET":
                keys = account_keys(account)
                start_response("200 OK", list(SSE_HEADERS.items()))
                return self.stream(keys)
            if path == "/run-task" and method == "POST":
                task = self.workers.start(account_keys(account)["account_id"])
                return _respond(start_response, "202 Accepted", "application/json", json_body(task=task))
        except ValueError as exc:
            return _respond(start_response, "400 Bad Request", "text/plain", str(exc).encode())
        return _respond(start_response, "404 Not Found", "text/plain", b"not found")

    def stream(self, keys: dict[str, str]) -> Iterator[bytes]:
        """Yield SSE chunks while the browser is connected.

        WSGI has no "connection closed" event: a browser that left is noticed
        when a write fails, which the periodic keep-alive guarantees; pywsgi
        then closes this generator and ``finally`` unregisters.
        """
        queue: Queue[Message] = Queue()
        callback = queue.put  # bound once, so unregister gets the same callable
        yield SSE_OPEN
        try:
            self.registry.register(keys, callback)  # blocks this greenlet until stored
            yield SSE_READY
            while True:
                try:
                    yield sse_event(queue.get(timeout=KEEPALIVE_SECONDS))
                except Empty:
                    yield SSE_KEEPALIVE
        finally:
            self.registry.unregister(keys, callback, timeout=0)


def _respond(start_response: StartResponse, status: str, content_type: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def main() -> None:
    args = parse_args("gevent")
    listener = socket.create_server((args.host, args.port))
    port = listener.getsockname()[1]
    registry = Registry(url=webhook_url(args.host, port), store=args.store, secret=args.secret, ttl=args.ttl)
    workers = Workers(args.store, args.secret)
    server = WSGIServer(listener, DemoApp(registry, workers), log=None)
    server.start()
    stopping = Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stopping.set)
    registry.start()
    announce(args.host, port)
    stopping.wait()
    server.stop(timeout=1)  # open streams are closed, unregistering their callbacks
    workers.stop()
    registry.stop()  # removes this URL from the store (bounded by stop_timeout)


if __name__ == "__main__":
    main()
