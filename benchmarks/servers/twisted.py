"""The Twisted benchmark receiver (see ``_tally``)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from benchmarks.servers._tally import Tally, announce, parse_args

BARE_REPLY = b'{"status":"ok","notified":1}'


def main() -> None:
    args = parse_args()
    tally = Tally()
    from skyhooks.twisted import Registry, WebhookRequest, WebhookResource

    class BareResource(Resource):
        isLeaf = True

        def render_POST(self, request: Any) -> bytes:
            tally.parsed(request.content.read())
            request.setHeader("Content-Type", "application/json")
            return BARE_REPLY

    class TallyResource(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            return tally.answer(request.postpath[0].decode()) or b""

    root = Resource()
    root.putChild(b"tally", TallyResource())
    site = Site(root)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    number = port.getHost().port
    store = args.store if args.mode == "skyhooks" else "memory://"  # (bare: a registry never started)
    registry = Registry(f"http://127.0.0.1:{number}/skyhooks", store, args.secret, ttl=3600)
    # The same request factory in both modes, so only the resource differs.
    site.requestFactory = WebhookRequest.for_registry(registry)
    waits = []
    if args.mode == "skyhooks":
        registry.start()
        waits = [registry.register(keys, tally.callback) for keys in args.keys]
        root.putChild(b"skyhooks", WebhookResource(registry))
    else:
        root.putChild(b"skyhooks", BareResource())
    defer.gatherResults(waits).addCallback(lambda _: announce(number))
    reactor.run()


if __name__ == "__main__":
    main()
