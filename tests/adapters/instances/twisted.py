"""The Twisted instance program (see ``tests.adapters.instances`` for the contract).

``python -m tests.adapters.instances.twisted --store URL --secret S --ttl T --port 0``
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import LoopingCall, deferLater
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from skyhooks import Message, open_store
from skyhooks.twisted import Publisher, Registry, WebhookRequest, WebhookResource

from .common import (
    Publishers,
    Recorder,
    announce,
    error_json,
    ok_json,
    parse_args,
    report_json,
    topics_json,
)


def make_async(record: Callable[[Message], None]) -> Callable[[Message], Awaitable[None]]:
    async def callback(message: Message) -> None:
        await deferLater(reactor, 0, lambda: None)  # yield to the reactor once
        record(message)

    return callback


class Control(Resource):
    """``/control/...``: translates HTTP to the registry, the publisher and the recorder."""

    isLeaf = True

    def __init__(self, registry: Registry, store: Any, secret: str, recorder: Recorder) -> None:
        super().__init__()
        self.registry, self.store, self.secret, self.recorder = registry, store, secret, recorder
        self.publishers = Publishers(Publisher, store, secret)

    def render_GET(self, request: Request) -> bytes:
        route = b"/".join(request.postpath)
        request.setHeader("Content-Type", "application/json")
        if route == b"received":
            return json.dumps(self.recorder.received).encode()
        if route == b"topics":
            return topics_json(self.registry.topics)
        if route == b"lag":
            return json.dumps(self.recorder.lag()).encode()
        request.setResponseCode(404)
        return b'{"error": "no such control endpoint"}'

    def render_POST(self, request: Request) -> Any:
        route = b"/".join(request.postpath).decode("latin-1")
        request.setHeader("Content-Type", "application/json")
        handler = getattr(self, "post_" + route, None)
        try:
            body = json.loads(request.content.read() or b"{}")
            if handler is None or not isinstance(body, dict):
                raise ValueError(f"no such control endpoint {route!r} or body not an object")
        except ValueError as exc:
            request.setResponseCode(400)
            return json.dumps({"error": str(exc)}).encode()
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(payload: bytes) -> None:
            if not gone:
                request.write(payload)
                request.finish()

        def refuse(failure: Any) -> bytes:
            request.setResponseCode(400)
            return json.dumps({"error": f"{failure.type.__name__}: {failure.value}"}).encode()

        ensureDeferred(handler(body)).addErrback(refuse).addCallback(answer)
        return NOT_DONE_YET

    async def post_register(self, body: dict[str, Any]) -> bytes:
        callback = self.recorder.callback(body["name"], body.get("kind", "sync"), make_async)
        waiter = self.registry.register(body["keys"], callback)
        if body.get("wait", True):
            await waiter
        return ok_json()

    async def post_unregister(self, body: dict[str, Any]) -> bytes:
        callback = self.recorder.callback(body["name"], body.get("kind", "sync"), make_async)
        waiter = self.registry.unregister(body["keys"], callback)
        if body.get("wait", True):
            await waiter
        return ok_json()

    async def post_reset(self, body: dict[str, Any]) -> bytes:
        self.recorder.reset()
        return ok_json()

    async def post_notify(self, body: dict[str, Any]) -> bytes:
        try:
            report = await self.publishers.get(body.get("retry")).notify(body["keys"], body.get("data"))
        except Exception as exc:  # the suite checks what the error says
            return error_json(exc)
        return report_json(report)

    async def post_stop(self, body: dict[str, Any]) -> bytes:
        return json.dumps({"removed": await self.registry.stop()}).encode()


def main() -> None:
    args = parse_args(__doc__ or "")
    recorder = Recorder()
    root = Resource()
    site = Site(root)
    port = reactor.listenTCP(args.port, site, interface="127.0.0.1").getHost().port
    store = open_store(args.store)  # one store object, so memory:// is shared with the publisher
    registry = Registry(f"http://127.0.0.1:{port}/skyhooks", store, args.secret, ttl=args.ttl)
    site.requestFactory = WebhookRequest.for_registry(registry)  # early 413s
    root.putChild(b"skyhooks", WebhookResource(registry))
    root.putChild(b"control", Control(registry, store, args.secret, recorder))
    LoopingCall(recorder.tick).start(Recorder.TICK)
    registry.start()
    registry.stop_on_shutdown()  # SIGTERM/SIGINT stop the reactor, which waits for this
    announce(port)
    reactor.run()


if __name__ == "__main__":
    main()
