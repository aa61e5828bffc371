"""Run a MongoDB-wire-compatible server (mongoeco) until SIGTERM/SIGINT.

mongoeco has no command line of its own, so this is ours. It runs under the
Python 3.13 interpreter that has ``mongoeco[wire]`` installed (see
``scripts/mongoeco-venv``), binds 127.0.0.1 on the given port (0 = a free one)
and prints ``LISTENING <port>`` on stdout once it accepts connections, so the
test that started it knows where to connect.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


async def serve(port: int, engine_name: str, path: str | None) -> None:
    from mongoeco.engines import MemoryEngine, SQLiteEngine
    from mongoeco.wire import AsyncMongoEcoProxyServer

    engine = SQLiteEngine(path) if engine_name == "sqlite" else MemoryEngine()
    server = AsyncMongoEcoProxyServer(engine=engine, host="127.0.0.1", port=port)
    address = await server.start()
    print(f"LISTENING {address.port}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--engine", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--path", help="database file for the sqlite engine")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.engine, args.path))
    sys.exit(0)


if __name__ == "__main__":
    main()
