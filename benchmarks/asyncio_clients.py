"""Which HTTP client the asyncio publisher sends with: aiohttp against httpx.

    python -m benchmarks.asyncio_clients [--seconds 3] [--cycles 2] [--in-flight 16]

One ``skyhooks.asyncio.Publisher`` per client, alike in everything but its
transport (the same store, retry policy, concurrency and coalescing: two POSTs
in flight per instance, the rest batched), notifies a key that 4 raw receivers
(``benchmarks/raw_receiver.py``, each its own process) listen for, with
``--in-flight`` notifies awaited at once. The two run in this one process on
one loop, in the order A B B A, ``--cycles`` times, ``--seconds`` each; the
table gives each run's POSTs/s and this process's CPU time per POST, and the
medians. ``docs/asyncio-client.md`` has the figures that chose the client.

The httpx transport lives here, not in skyhooks: it lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Mapping
from typing import Any

import httpx
from zope.interface import implementer

from benchmarks.common import receivers
from skyhooks import Topic, generate_secret
from skyhooks.aiohttp._transport import AiohttpTransport
from skyhooks.asyncio import Publisher
from skyhooks.core.delivery import HTTPResult, ITransport, transport_errors
from skyhooks.core.errors import TransportError
from skyhooks.core.stores.memory import MemoryStore

KEYS = {"account_id": 42}
DATA = {"progress": 50, "step": "resizing images"}
FANOUT = 4

_HTTPX_KINDS: dict[type[BaseException], str] = {httpx.TimeoutException: "timeout", httpx.HTTPError: "error"}


@implementer(ITransport)
class HttpxTransport:
    """POSTs through one ``httpx.AsyncClient`` (made on the first loop that posts),
    at most *limit* connections, kept alive; mapped as :class:`AiohttpTransport` is."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._client: httpx.AsyncClient | None = None

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> HTTPResult:
        if self._client is None:
            limits = httpx.Limits(max_connections=self.limit, max_keepalive_connections=self.limit)
            self._client = httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=False)
        with transport_errors(_HTTPX_KINDS):
            try:
                response = await self._client.post(url, content=body, headers=headers, timeout=timeout)
            except httpx.ConnectError as exc:
                if isinstance(exc.__context__, ConnectionRefusedError):
                    raise TransportError("refused", str(exc)) from exc
                raise
        return HTTPResult(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def close(self) -> None:
        """(``aclose`` closes it: httpx closes only from a coroutine.)"""


async def _rate(publisher: Publisher, seconds: float, in_flight: int) -> tuple[float, float]:
    """POSTs/s and CPU microseconds per POST of *in_flight* loops notifying for *seconds*."""
    stop = time.monotonic() + seconds
    posts = 0

    async def loop() -> None:
        nonlocal posts
        while time.monotonic() < stop:
            report = await publisher.notify(KEYS, DATA)
            assert len(report.delivered) == FANOUT, report
            posts += FANOUT

    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(loop() for _ in range(in_flight)))
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    return posts / elapsed, cpu / posts * 1e6


async def measure(urls: list[str], seconds: float, cycles: int, in_flight: int) -> dict[str, Any]:
    store = MemoryStore()
    for url in urls:
        store.add(url, {Topic("account_id", "42")}, ttl=3600)
    secret = generate_secret()
    publishers = {
        "aiohttp": Publisher(store, secret, transport=AiohttpTransport(32)),
        "httpx": Publisher(store, secret, transport=HttpxTransport(32)),
    }
    for publisher in publishers.values():  # connections made, code warm: not in the figures
        await _rate(publisher, 0.3, in_flight)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in publishers}
    for _ in range(cycles):
        for name in ("aiohttp", "httpx", "httpx", "aiohttp"):
            runs[name].append(await _rate(publishers[name], seconds, in_flight))
    for publisher in publishers.values():
        await publisher.aclose()
    return {
        name: {
            "posts_per_s": [round(rate) for rate, _ in figures],
            "cpu_us_per_post": [round(cpu, 1) for _, cpu in figures],
            "median_posts_per_s": round(statistics.median(rate for rate, _ in figures)),
            "median_cpu_us_per_post": round(statistics.median(cpu for _, cpu in figures), 1),
        }
        for name, figures in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    with receivers(FANOUT) as urls:
        figures = asyncio.run(measure(urls, args.seconds, args.cycles, args.in_flight))
    versions = {"aiohttp": _version("aiohttp"), "httpx": _version("httpx")}
    print(
        f"\nskyhooks.asyncio.Publisher -> {FANOUT} raw receivers, {args.in_flight} notifies in flight, "
        f"A B B A x{args.cycles}, {args.seconds:g} s per run\n"
    )
    print("| client | POSTs/s, each run | median | CPU us/POST, each run | median |")
    print("|---|---|---:|---|---:|")
    for name, f in figures.items():
        rates = ", ".join(f"{r:,}" for r in f["posts_per_s"])
        cpus = ", ".join(f"{c:g}" for c in f["cpu_us_per_post"])
        print(
            f"| {name} {versions[name]} | {rates} | {f['median_posts_per_s']:,} "
            f"| {cpus} | {f['median_cpu_us_per_post']:g} |"
        )
    if args.json:
        print(json.dumps({"versions": versions, **figures}))


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
