"""A tiny Tornado instance for the partition test: binds ``--host`` (a network
namespace's address, which the shared instance programs cannot), registers one
callback for ``--keys``, and appends each message id it gets to ``--record``.

    python -m tests.reliability.ns_instance --host 10.213.77.2 --store URL --secret S --keys a=1 --record F
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from skyhooks import Message
from skyhooks.tornado import Registry, WebhookHandler


async def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--host", "--store", "--secret", "--keys", "--record"):
        parser.add_argument(name, required=True)
    parser.add_argument("--ttl", type=float, default=90.0)
    args = parser.parse_args()
    sockets = bind_sockets(0, args.host)
    port = sockets[0].getsockname()[1]
    registry = Registry(
        url=f"http://{args.host}:{port}/skyhooks", store=args.store, secret=args.secret, ttl=args.ttl
    )
    server = HTTPServer(Application([(r"/skyhooks", WebhookHandler, {"registry": registry})]))
    server.add_sockets(sockets)
    record = open(args.record, "a", buffering=1)  # noqa: SIM115 - process-long

    def on_message(message: Message) -> None:
        record.write(message.id + "\n")

    name, value = args.keys.split("=", 1)
    registry.start()
    await registry.register({name: value}, on_message)
    print(f"LISTENING {port}", flush=True)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    await stopping.wait()
    server.stop()
    await registry.stop()


if __name__ == "__main__":
    asyncio.run(main())
