"""The Tornado benchmark receiver (see ``_tally``)."""

from __future__ import annotations

import asyncio

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from benchmarks.servers._tally import Tally, announce, parse_args

BARE_REPLY = b'{"status":"ok","notified":1}'


async def main() -> None:
    args = parse_args()
    tally = Tally()

    class BareHandler(RequestHandler):
        def post(self) -> None:
            tally.parsed(self.request.body)
            self.set_header("Content-Type", "application/json")
            self.finish(BARE_REPLY)

    class TallyHandler(RequestHandler):
        def get(self, what: str) -> None:
            self.finish(tally.answer(what))

    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    waits = []
    if args.mode == "skyhooks":
        from skyhooks.tornado import Registry, WebhookHandler

        registry = Registry(f"http://127.0.0.1:{port}/skyhooks", args.store, args.secret, ttl=3600)
        registry.start()
        waits = [registry.register(keys, tally.callback) for keys in args.keys]
        hook: tuple = (r"/skyhooks", WebhookHandler, {"registry": registry})
    else:
        hook = (r"/skyhooks", BareHandler)
    HTTPServer(Application([hook, (r"/tally/(\w+)", TallyHandler)])).add_sockets(sockets)
    await asyncio.gather(*waits)
    announce(port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
