"""A receiver process hosting several skyhooks instances, for the fleet figure.

    python -m benchmarks.servers.fleet --store URL --secret S --instances 0,2,4 --of 64 [--accounts 100000]

Instance *k* of ``--of`` listens on a port of its own (a Tornado ``HTTPServer``
around ``WebhookDelegate``, URL ``http://127.0.0.1:<port>/skyhooks``) for
``account_id=a`` for every account *a* with ``a % of == k``, all through one
counting callback; so 64 instances fit in two processes, each as a real fleet
would have it: its own URL, its own connections, its own registry. A port per
instance rather than paths on one port, so the publisher opens and keeps a
connection per instance, as it would across machines.

One store object is shared by the process's registries (a process of a real
fleet has one instance and one store client). Every registry registers before
it starts, so each writes its whole set in one ``renew``. Prints
``LISTENING <port>`` of the ``/tally`` endpoint (``benchmarks.servers._tally``)
once every subscription is in the store.
"""

from __future__ import annotations

import argparse
import asyncio
import gc

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from benchmarks.servers._tally import Tally, announce
from skyhooks import open_store
from skyhooks.tornado import Registry, WebhookDelegate


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--instances", required=True, help="comma-separated instance indexes")
    parser.add_argument("--of", type=int, required=True, help="instances in the whole fleet")
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args()
    tally = Tally()
    store = open_store(args.store)
    waits = []
    for k in (int(i) for i in args.instances.split(",")):
        sockets = bind_sockets(0, "127.0.0.1")
        port = sockets[0].getsockname()[1]
        registry = Registry(f"http://127.0.0.1:{port}/skyhooks", store, args.secret, ttl=3600)
        last = None
        for account in range(k, args.accounts, args.of):
            last = registry.register({"account_id": account}, tally.callback)
        registry.start()
        HTTPServer(WebhookDelegate(registry)).add_sockets(sockets)
        if last is not None:
            waits.append(last)  # one write carries them all; the last resolves with it

    class TallyHandler(RequestHandler):
        def get(self, what: str) -> None:
            self.finish(tally.answer(what))

    sockets = bind_sockets(0, "127.0.0.1")
    HTTPServer(Application([(r"/tally/(\w+)", TallyHandler)])).add_sockets(sockets)
    try:
        await asyncio.wait_for(asyncio.gather(*waits), timeout=120)
    except asyncio.TimeoutError:
        # The registries retry a failing store for ever, by design; a benchmark should not.
        raise SystemExit(
            f"the store {args.store} took no subscriptions in 120 s (see the log above)"
        ) from None
    announce(sockets[0].getsockname()[1])
    # What set-up made (100k subscriptions' worth) is left out of every later
    # collection: a real instance registers over hours, not in the measured seconds.
    gc.freeze()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
