"""The Tornado benchmark receiver (see ``_tally``): by default on ``WebhookDelegate``, the
endpoint skyhooks recommends, against a bare delegate; ``--endpoint handler`` on
``WebhookHandler`` against a bare ``RequestHandler``."""

from __future__ import annotations

import asyncio
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPHeaders, HTTPMessageDelegate, HTTPServerConnectionDelegate, ResponseStartLine
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

    class BareRequest(HTTPMessageDelegate):
        """What WebhookDelegate's requests are, doing only what a bare handler does."""

        def __init__(self, connection: Any) -> None:
            self.connection, self.chunks = connection, []

        def data_received(self, chunk: bytes) -> None:
            self.chunks.append(chunk)

        def finish(self) -> None:
            tally.parsed(b"".join(self.chunks))
            headers = HTTPHeaders({"Content-Type": "application/json", "Content-Length": "28"})
            self.connection.write_headers(ResponseStartLine("HTTP/1.1", 200, "OK"), headers, BARE_REPLY)
            self.connection.finish()

    class BareDelegate(HTTPServerConnectionDelegate):
        def start_request(self, server_conn: Any, request_conn: Any) -> HTTPMessageDelegate:
            return BareRequest(request_conn)

    class TallyHandler(RequestHandler):
        def get(self, what: str) -> None:
            self.finish(tally.answer(what))

    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    waits = []
    if args.mode == "skyhooks":
        from skyhooks.tornado import Registry, WebhookDelegate, WebhookHandler

        registry = Registry(f"http://127.0.0.1:{port}/skyhooks", args.store, args.secret, ttl=3600)
        registry.start()
        waits = [registry.register(keys, tally.callback) for keys in args.keys]
        if args.endpoint == "delegate":
            hook: tuple = (r"/skyhooks", WebhookDelegate(registry))
        else:
            hook = (r"/skyhooks", WebhookHandler, {"registry": registry})
    elif args.endpoint == "delegate":
        hook = (r"/skyhooks", BareDelegate())
    else:
        hook = (r"/skyhooks", BareHandler)
    HTTPServer(Application([hook, (r"/tally/(\w+)", TallyHandler)])).add_sockets(sockets)
    await asyncio.gather(*waits)
    announce(port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
