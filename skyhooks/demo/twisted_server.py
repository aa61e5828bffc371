# twisted.web is only partly annotated.
# mypy: allow-untyped-calls
"""The demo server on Twisted: ``python -m skyhooks.demo.twisted_server --store URL --secret S``."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import LoopingCall
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from ..core.values import Message
from ..twisted import Registry, WebhookResource
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


def _account(request: Request) -> dict[str, str]:
    return account_keys(request.args.get(b"account_id", [None])[0])


class PageResource(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader("Content-Type", "text/html; charset=utf-8")
        return page("twisted")


class EventsResource(Resource):
    """An SSE stream holding a callback for one account while the browser is connected."""

    isLeaf = True

    def __init__(self, registry: Registry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> Any:
        try:
            keys = _account(request)
        except ValueError as exc:
            request.setResponseCode(400)
            return str(exc).encode()
        for name, value in SSE_HEADERS.items():
            request.setHeader(name, value)
        gone: list[bool] = []

        def send(chunk: bytes) -> None:
            if not gone:  # writing to a finished request raises
                request.write(chunk)

        def on_message(message: Message) -> None:
            send(sse_event(message))

        def closed(_: object) -> None:  # the browser left, or the server is shutting down
            gone.append(True)
            keepalive.stop()
            self.registry.unregister(keys, on_message)

        send(SSE_OPEN)
        keepalive = LoopingCall(send, SSE_KEEPALIVE)
        keepalive.start(KEEPALIVE_SECONDS, now=False)
        request.notifyFinish().addBoth(closed)
        self.registry.register(keys, on_message).addCallback(lambda _: send(SSE_READY))
        return NOT_DONE_YET


class RunTaskResource(Resource):
    isLeaf = True

    def __init__(self, workers: Workers) -> None:
        super().__init__()
        self.workers = workers

    def render_POST(self, request: Request) -> bytes:
        try:
            account = _account(request)["account_id"]
        except ValueError as exc:
            request.setResponseCode(400)
            return str(exc).encode()
        request.setResponseCode(202)
        request.setHeader("Content-Type", "application/json")
        return json_body(task=self.workers.start(account))


def main() -> None:
    args = parse_args("twisted")
    root = Resource()
    listening = reactor.listenTCP(args.port, Site(root), interface=args.host)  # type: ignore[arg-type]
    port = listening.getHost().port  # type: ignore[attr-defined]  # an IPv4Address
    registry = Registry(webhook_url(args.host, port), args.store, args.secret, ttl=args.ttl)
    workers = Workers(args.store, args.secret)
    root.putChild(b"", PageResource())
    root.putChild(b"events", EventsResource(registry))
    root.putChild(b"run-task", RunTaskResource(workers))
    root.putChild(b"skyhooks", WebhookResource(registry))
    registry.start()
    # SIGINT/SIGTERM stop the reactor, which first waits for these.
    registry.stop_on_shutdown()
    reactor.addSystemEventTrigger("before", "shutdown", workers.stop)
    announce(args.host, port)
    reactor.run()


if __name__ == "__main__":
    main()
