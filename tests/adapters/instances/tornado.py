"""The Tornado instance program (see ``tests/adapters/instances/__init__.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from skyhooks import SkyhooksError, open_store
from skyhooks.tornado import Publisher, Registry, WebhookDelegate, WebhookHandler

from .common import (
    Publishers,
    Recorder,
    announce,
    asyncio_callback,
    error_json,
    ok_json,
    parse_args,
    report_json,
    topics_json,
)


class Instance:
    def __init__(self, store: Any, secret: str, registry: Registry) -> None:
        self.store, self.secret, self.registry = store, secret, registry
        self.recorder = Recorder()
        self.publishers = Publishers(Publisher, store, secret)


class ControlHandler(RequestHandler):
    def initialize(self, instance: Instance) -> None:
        self.instance = instance

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"error": self._reason})

    def get(self, action: str) -> None:
        recorder, registry = self.instance.recorder, self.instance.registry
        answers: dict[str, Callable[[], Any]] = {
            "received": lambda: json.dumps(recorder.received).encode(),
            "topics": lambda: topics_json(registry.topics),
            "lag": lambda: json.dumps(recorder.lag()).encode(),
        }
        if action not in answers:
            self.send_error(404)
            return
        self._answer(answers[action]())

    async def post(self, action: str) -> None:
        try:
            request = json.loads(self.request.body or b"{}")
            body = await self._act(action, request)
        except (ValueError, TypeError, KeyError) as exc:
            self.set_status(400)
            body = error_json(exc)
        self._answer(body)

    async def _act(self, action: str, request: dict[str, Any]) -> bytes:
        instance = self.instance
        registry, recorder = instance.registry, instance.recorder
        if action in ("register", "unregister"):
            callback = recorder.callback(request["name"], request.get("kind", "sync"), asyncio_callback)
            method = registry.register if action == "register" else registry.unregister
            done = method(request["keys"], callback)
            if request.get("wait", True):
                await done
            return ok_json()
        if action == "reset":
            recorder.reset()
            return ok_json()
        if action == "notify":
            publisher = instance.publishers.get(request.get("retry"))
            try:
                return report_json(await publisher.notify(request["keys"], request.get("data")))
            except SkyhooksError as exc:
                return error_json(exc)
        if action == "stop":
            return json.dumps({"removed": await registry.stop()}).encode()
        raise KeyError(f"no control action {action!r}")

    def _answer(self, body: bytes) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(body)


async def main() -> None:
    args = parse_args(__doc__ or "")
    sockets = bind_sockets(args.port, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    # One store object for the registry and the publishers, so memory:// is shared too.
    store = open_store(args.store)
    url = f"http://127.0.0.1:{port}/skyhooks"
    registry = Registry(url=url, store=store, secret=args.secret, ttl=args.ttl)
    instance = Instance(store, args.secret, registry)
    # The recommended endpoint, or (for the behaviour suite's second run) the RequestHandler one.
    if os.environ.get("SKYHOOKS_TEST_TORNADO_ENDPOINT") == "WebhookHandler":
        endpoint: tuple[Any, ...] = (r"/skyhooks", WebhookHandler, {"registry": registry})
    else:
        endpoint = (r"/skyhooks", WebhookDelegate(registry))
    app = Application(
        [
            endpoint,
            (r"/control/(\w+)", ControlHandler, {"instance": instance}),
        ]
    )
    server = HTTPServer(app)
    server.add_sockets(sockets)
    PeriodicCallback(instance.recorder.tick, Recorder.TICK * 1000).start()

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    registry.start()
    announce(port)
    await stopping.wait()

    server.stop()
    await registry.stop()  # bounded by the registry's stop_timeout
    for publisher in instance.publishers.values():
        publisher.close()


if __name__ == "__main__":
    asyncio.run(main())
