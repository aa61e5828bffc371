"""The aiohttp benchmark receiver (see ``_tally``): ``WebhookHandler`` against a bare
aiohttp handler that reads the body, ``json.loads`` it and answers the same reply bytes,
each routed at ``/skyhooks`` for every method."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiohttp import web

from benchmarks.servers._tally import Tally, announce, parse_args

BARE_REPLY = b'{"status":"ok","notified":1}'


async def main() -> None:
    args = parse_args()
    tally = Tally()

    async def bare(request: web.Request) -> web.Response:
        tally.parsed(await request.read())
        return web.Response(body=BARE_REPLY, content_type="application/json")

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=tally.answer(request.match_info["what"]) or b"")

    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = sock.getsockname()[1]
    hook: Any = bare
    waits: list[Any] = []
    if args.mode == "skyhooks":
        from skyhooks.aiohttp import Registry, WebhookHandler

        registry = Registry(f"http://127.0.0.1:{port}/skyhooks", args.store, args.secret, ttl=3600)
        registry.start()
        waits = [registry.register(keys, tally.callback) for keys in args.keys]
        hook = WebhookHandler(registry)
    app = web.Application()
    app.router.add_route("*", "/skyhooks", hook)
    app.router.add_get("/tally/{what}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    await asyncio.gather(*waits)
    announce(port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
