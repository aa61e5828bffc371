"""The ASGI instance program (see ``tests/adapters/instances/__init__.py``): ``WebhookASGI``
under uvicorn, mounted at ``/skyhooks`` by a small router of this program's own, whose
lifespan starts the registry and stops it, as a Starlette or FastAPI app's would."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from skyhooks import SkyhooksError, open_store
from skyhooks.asyncio import Publisher, Registry, WebhookASGI

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


class App:
    """``/skyhooks`` -> the WebhookASGI, ``/control/<action>`` -> the control endpoints."""

    def __init__(self, store: Any, secret: str, registry: Registry, port: int) -> None:
        self.registry, self.port = registry, port
        self.webhook = WebhookASGI(registry)
        self.recorder = Recorder()
        self.publishers = Publishers(Publisher, store, secret)
        self._ticker: asyncio.Task[None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"] == "/skyhooks":
            await self.webhook(scope, receive, send)
        elif scope["type"] == "http" and scope["path"].startswith("/control/"):
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
            status, answer = await self.control(scope["method"], scope["path"][len("/control/") :], body)
            await respond(send, status, answer)
        else:
            await respond(send, 404, b'{"error": "not found"}')

    async def lifespan(self, receive: Any, send: Any) -> None:
        while (await receive())["type"] == "lifespan.startup":
            self._ticker = asyncio.ensure_future(self.tick())
            self.registry.start()
            announce(self.port)  # the socket listens already: connections wait in its backlog
            await send({"type": "lifespan.startup.complete"})
        await self.registry.stop()  # bounded by the registry's stop_timeout
        for publisher in self.publishers.values():
            await publisher.aclose()
        if self._ticker is not None:
            self._ticker.cancel()
        await send({"type": "lifespan.shutdown.complete"})

    async def tick(self) -> None:
        while True:
            self.recorder.tick()
            await asyncio.sleep(Recorder.TICK)

    async def control(self, method: str, action: str, body: bytes) -> tuple[int, bytes]:
        recorder, registry = self.recorder, self.registry
        if method == "GET":
            answers: dict[str, Callable[[], bytes]] = {
                "received": lambda: json.dumps(recorder.received).encode(),
                "topics": lambda: topics_json(registry.topics),
                "lag": lambda: json.dumps(recorder.lag()).encode(),
            }
            return (200, answers[action]()) if action in answers else (404, b'{"error": "not found"}')
        try:
            request = json.loads(body or b"{}")
            if action in ("register", "unregister"):
                callback = recorder.callback(request["name"], request.get("kind", "sync"), asyncio_callback)
                change = registry.register if action == "register" else registry.unregister
                done = change(request["keys"], callback)
                if request.get("wait", True):
                    await done
                return 200, ok_json()
            if action == "reset":
                recorder.reset()
                return 200, ok_json()
            if action == "notify":
                publisher = self.publishers.get(request.get("retry"))
                try:
                    return 200, report_json(await publisher.notify(request["keys"], request.get("data")))
                except SkyhooksError as exc:
                    return 200, error_json(exc)
            if action == "stop":
                return 200, json.dumps({"removed": await registry.stop()}).encode()
            raise KeyError(f"no control action {action!r}")
        except (ValueError, TypeError, KeyError) as exc:
            return 400, error_json(exc)


async def respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    args = parse_args(__doc__ or "")
    # IPPROTO_TCP, not socket()'s protocol 0: asyncio sets TCP_NODELAY on accepted
    # connections only for TCP sockets, and without it each kept-alive answer waits
    # for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    # One store object for the registry and the publishers, so memory:// is shared too.
    store = open_store(args.store)
    registry = Registry(
        url=f"http://127.0.0.1:{port}/skyhooks", store=store, secret=args.secret, ttl=args.ttl
    )
    app = App(store, args.secret, registry, port)
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    # uvicorn handles SIGTERM and SIGINT (a graceful shutdown, then the lifespan's), then
    # raises the signal again for the handler it found: by then this program is done.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
