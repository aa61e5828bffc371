"""Baseline receiver: a python-socketio server (aiohttp) in a Redis-backed cluster.

    python -m benchmarks.baselines.socketio_server --redis-port P --channel C

Publishers emit with ``socketio.RedisManager(url, channel=C, write_only=True)``;
the server's ``AsyncRedisManager`` receives each emit from Redis and hands it to
its local clients. The counting "callback" sits at that hand-off
(``_handle_emit``), the same point as a skyhooks callback: the message has
reached the server process and been decoded.
"""

from __future__ import annotations

import argparse
import asyncio

import socketio
from aiohttp import web

from benchmarks.baselines.redis_subscriber import serve_tally
from benchmarks.servers._tally import Tally, announce


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--channel", required=True)
    args = parser.parse_args()
    tally = Tally()

    class CountingManager(socketio.AsyncRedisManager):  # type: ignore[misc]
        async def _handle_emit(self, message: dict) -> None:
            data = message["data"]
            payload = data[0] if isinstance(data, list) and data else data
            tally.count += 1
            inner = payload.get("data") if isinstance(payload, dict) else None
            if isinstance(inner, dict) and "t" in inner:
                import time

                tally.latencies.append((time.time() - inner["t"]) * 1000)
            await super()._handle_emit(message)

    manager = CountingManager(f"redis://127.0.0.1:{args.redis_port}/0", channel=args.channel)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    # Normally started by the first client connection; no browser connects here.
    sio.manager_initialized = True
    manager.initialize()
    await asyncio.sleep(0.3)  # let the listener subscribe before anyone publishes
    announce(serve_tally(tally))
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
