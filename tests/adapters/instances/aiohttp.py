"""The aiohttp instance program (see ``tests/adapters/instances/__init__.py``):
``WebhookHandler`` routed at ``/skyhooks`` of an ``aiohttp.web.Application``."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from skyhooks import SkyhooksError, open_store
from skyhooks.aiohttp import Publisher, Registry, WebhookHandler

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


class Control:
    """The control endpoints, as aiohttp handlers."""

    def __init__(self, store: Any, secret: str, registry: Registry) -> None:
        self.registry = registry
        self.recorder = Recorder()
        self.publishers = Publishers(Publisher, store, secret)

    async def get(self, request: web.Request) -> web.Response:
        recorder, registry = self.recorder, self.registry
        answers: dict[str, Callable[[], bytes]] = {
            "received": lambda: json.dumps(recorder.received).encode(),
            "topics": lambda: topics_json(registry.topics),
            "lag": lambda: json.dumps(recorder.lag()).encode(),
        }
        action = request.match_info["action"]
        if action not in answers:
            return answer(404, b'{"error": "not found"}')
        return answer(200, answers[action]())

    async def post(self, request: web.Request) -> web.Response:
        try:
            body = await self.act(request.match_info["action"], json.loads(await request.read() or b"{}"))
        except (ValueError, TypeError, KeyError) as exc:
            return answer(400, error_json(exc))
        return answer(200, body)

    async def act(self, action: str, request: dict[str, Any]) -> bytes:
        recorder, registry = self.recorder, self.registry
        if action in ("register", "unregister"):
            callback = recorder.callback(request["name"], request.get("kind", "sync"), asyncio_callback)
            change = registry.register if action == "register" else registry.unregister
            done = change(request["keys"], callback)
            if request.get("wait", True):
                await done
            return ok_json()
        if action == "reset":
            recorder.reset()
            return ok_json()
        if action == "notify":
            publisher = self.publishers.get(request.get("retry"))
            try:
                return report_json(await publisher.notify(request["keys"], request.get("data")))
            except SkyhooksError as exc:
                return error_json(exc)
        if action == "stop":
            return json.dumps({"removed": await registry.stop()}).encode()
        raise KeyError(f"no control action {action!r}")


def answer(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")


async def main() -> None:
    args = parse_args(__doc__ or "")
    # IPPROTO_TCP, not socket()'s protocol 0: asyncio sets TCP_NODELAY on accepted
    # connections only for TCP sockets, and without it each kept-alive answer waits
    # for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    # One store object for the registry and the publishers, so memory:// is shared too.
    store = open_store(args.store)
    registry = Registry(
        url=f"http://127.0.0.1:{port}/skyhooks", store=store, secret=args.secret, ttl=args.ttl
    )
    control = Control(store, args.secret, registry)
    app = web.Application()
    app.router.add_route("*", "/skyhooks", WebhookHandler(registry))
    app.router.add_get("/control/{action}", control.get)
    app.router.add_post("/control/{action}", control.post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()

    async def tick() -> None:
        while True:
            control.recorder.tick()
            await asyncio.sleep(Recorder.TICK)

    ticker = asyncio.ensure_future(tick())
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    registry.start()
    announce(port)
    await stopping.wait()

    await runner.cleanup()
    await registry.stop()  # bounded by the registry's stop_timeout
    for publisher in control.publishers.values():
        await publisher.aclose()
    ticker.cancel()


if __name__ == "__main__":
    asyncio.run(main())
