"""Baseline for the fleet figure: several python-socketio server nodes in one process,
all in one Redis-backed Socket.IO cluster.

    python -m benchmarks.baselines.socketio_fleet --redis-port P --channel C --instances 0,2,4 --of 64 \
        [--accounts 100000]

Node *k* of ``--of`` is an ``AsyncServer`` (on one aiohttp app, a Socket.IO path
each) with an ``AsyncRedisManager`` of its own on channel C, and holds the room
``a<account>`` for every account with ``account % of == k``, through a stand-in
participant (no browser connects, as no browser connects to the skyhooks
instances of the same figure). Publishers emit to one room with the write-only
``RedisManager``; every node's manager receives every emit from Redis, decodes
it and looks its room up, and all but the one holding the room find nobody
there: that discarded work is the broadcast's cost, which grows with the fleet.

``/tally`` (``benchmarks.servers._tally``) counts over the process's nodes:
``count``, emits that reached the node holding their room, at the same hand-off
point as ``socketio_server.py`` (the skyhooks callback's equivalent);
``seen``, emits any node handled (``nodes x sent`` once every node caught up).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

import socketio
from aiohttp import web

from benchmarks.baselines.redis_subscriber import serve_tally
from benchmarks.servers._tally import Tally, announce


class FleetTally(Tally):
    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def answer(self, what: str) -> bytes | None:
        if what == "seen":
            return str(self.seen).encode()
        return super().answer(what)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--instances", required=True, help="comma-separated node indexes")
    parser.add_argument("--of", type=int, required=True, help="nodes in the whole cluster")
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args()
    tally = FleetTally()

    class CountingManager(socketio.AsyncRedisManager):  # type: ignore[misc]
        async def _handle_emit(self, message: dict[str, Any]) -> None:
            tally.seen += 1
            if message.get("room") in self.rooms.get(message.get("namespace") or "/", ()):
                tally.count += 1
                data = message["data"]
                payload = data[0] if isinstance(data, list) and data else data
                inner = payload.get("data") if isinstance(payload, dict) else None
                if isinstance(inner, dict) and "t" in inner:
                    tally.latencies.append((time.time() - inner["t"]) * 1000)
            await super()._handle_emit(message)

    app = web.Application()
    for k in (int(i) for i in args.instances.split(",")):
        manager = CountingManager(f"redis://127.0.0.1:{args.redis_port}/0", channel=args.channel)
        sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
        sio.attach(app, socketio_path=f"node{k}")
        stand_in = f"stand-in-{k}"
        for account in range(k, args.accounts, args.of):
            manager.basic_enter_room(stand_in, "/", f"a{account}", eio_sid=stand_in)
        # Normally started by the first client connection; no browser connects here.
        sio.manager_initialized = True
        manager.initialize()
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    # The parent waits for Redis to count every node's subscription (PUBSUB NUMSUB).
    announce(serve_tally(tally))
    gc.freeze()  # set-up (100k rooms) stays out of later collections, as in the skyhooks receivers
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
