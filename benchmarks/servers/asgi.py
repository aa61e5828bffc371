"""The ASGI benchmark receiver (see ``_tally``): uvicorn with its httptools parser, the
server an ASGI deployment runs. ``--mode skyhooks`` serves ``WebhookASGI``; ``--mode bare``
a bare ASGI app of the same shape that reads the body, ``json.loads`` it and answers the
same reply bytes. Both sit behind the same small router, which also serves ``/tally``."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn

from benchmarks.servers._tally import Tally, announce, parse_args

BARE_REPLY = b'{"status":"ok","notified":1}'
BARE_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BARE_REPLY))]


async def main() -> None:
    args = parse_args()
    tally = Tally()

    async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        tally.parsed(body)
        await send({"type": "http.response.start", "status": 200, "headers": BARE_HEADERS})
        await send({"type": "http.response.body", "body": BARE_REPLY})

    # IPPROTO_TCP, not socket.create_server's 0: asyncio sets TCP_NODELAY on accepted
    # connections only when their protocol says TCP, and uvicorn writes a response in two
    # parts, the second of which would otherwise wait for the peer's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    hook: Any = bare
    waits: list[Any] = []
    if args.mode == "skyhooks":
        from skyhooks.asyncio import Registry, WebhookASGI

        registry = Registry(f"http://127.0.0.1:{port}/skyhooks", args.store, args.secret, ttl=3600)
        registry.start()
        waits = [registry.register(keys, tally.callback) for keys in args.keys]
        hook = WebhookASGI(registry)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        if path == "/skyhooks":
            await hook(scope, receive, send)
            return
        body = tally.answer(path.removeprefix("/tally/")) or b""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(app, http="httptools", lifespan="off", log_level="warning", access_log=False)
    await asyncio.gather(*waits)
    announce(port)  # the socket listens already: the first connections wait in its backlog
    await uvicorn.Server(config).serve(sockets=[sock])


if __name__ == "__main__":
    asyncio.run(main())
