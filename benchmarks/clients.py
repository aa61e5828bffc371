"""Each publisher against its own HTTP client alone: what skyhooks costs on the send side.

    python -m benchmarks.clients [--seconds 3] [--only blocking,tornado,gevent,twisted]

Every publisher notifies a key that 4 raw receivers (``benchmarks/raw_receiver.py``,
each its own process) listen for, in a ``memory://`` store, with 16 notifies in
flight (the blocking publisher: 4 calling threads, each fanning out to 4). The
baseline is the transport the publisher is built on, alone, POSTing the same
signed bytes to the same 4 URLs with the same concurrency: urllib3 in threads,
Tornado's ``AsyncHTTPClient`` (curl when pycurl is there), geventhttpclient in
greenlets, treq. Each framework runs in a process of its own (gevent must patch
first); ours and theirs alternate A B B A. POSTs/s and the ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import receivers

KEYS = {"account_id": 42}
DATA = {"progress": 50, "step": "resizing images"}
IN_FLIGHT = 16
FANOUT = 4


def _setup(urls: list[str]) -> tuple[str, Any]:
    from skyhooks import Topic, generate_secret
    from skyhooks.core.wire import Signer

    secret = generate_secret()
    message = Signer(secret).build(KEYS, DATA)
    from skyhooks.core.stores.memory import MemoryStore

    store = MemoryStore()
    for url in urls:
        store.add(url, {Topic("account_id", "42")}, ttl=3600)
    return secret, (store, message)


def _alternate(
    seconds: float, ours: Callable[[float], float], theirs: Callable[[float], float]
) -> dict[str, float]:
    half = seconds / 2
    a, b = ours(half), theirs(half)
    b, a = (b + theirs(half)) / 2, (a + ours(half)) / 2
    return {"skyhooks": a, "client": b, "ratio": a / b}


def _threads(seconds: float, callers: int, one_round: Callable[[], int]) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * callers

    def loop(i: int) -> None:
        while time.monotonic() < stop:
            counts[i] += one_round()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def blocking(urls: list[str], seconds: float) -> dict[str, float]:
    from concurrent.futures import ThreadPoolExecutor

    import urllib3

    from skyhooks import Publisher

    secret, (store, message) = _setup(urls)
    publisher = Publisher(store, secret)
    pool = ThreadPoolExecutor(publisher.concurrency)
    headers = dict(message.headers)
    client = urllib3.PoolManager(maxsize=publisher.concurrency, retries=False)  # as the publisher's

    def post(url: str) -> int:
        response = client.urlopen("POST", url, body=message.body, headers=headers, redirect=False)
        return response.status

    def ours() -> int:
        assert len(publisher.notify(KEYS, DATA).delivered) == FANOUT
        return FANOUT

    def theirs() -> int:
        assert all(status == 200 for status in pool.map(post, urls))
        return FANOUT

    callers = IN_FLIGHT // FANOUT
    return _alternate(seconds, lambda s: _threads(s, callers, ours), lambda s: _threads(s, callers, theirs))


def _async_rate(seconds: float, one_round: Callable[[], Any]) -> Any:
    """A coroutine: POSTs/s of IN_FLIGHT loops each awaiting *one_round* (-> POSTs done)."""

    async def measure() -> float:
        import asyncio

        stop = time.monotonic() + seconds
        done = 0

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < stop:
                posts = await one_round()
                done += posts  # not "done += await ...": that reads done before awaiting

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(IN_FLIGHT)))
        return done / (time.monotonic() - started)

    return measure()


def tornado(urls: list[str], seconds: float) -> dict[str, float]:
    import asyncio

    from tornado.httpclient import HTTPRequest

    from skyhooks.tornado import Publisher

    async def main() -> dict[str, float]:
        secret, (store, message) = _setup(urls)
        publisher = Publisher(store, secret)
        client = publisher.client_class(force_instance=True, max_clients=publisher.concurrency)

        async def ours() -> int:
            assert len((await publisher.notify(KEYS, DATA)).delivered) == FANOUT
            return FANOUT

        async def theirs() -> int:  # each request as the publisher's transport makes it
            requests = [
                HTTPRequest(u, "POST", dict(message.headers), message.body, follow_redirects=False)
                for u in urls
            ]
            answers = await asyncio.gather(*(client.fetch(r, raise_error=False) for r in requests))
            assert all(a.code == 200 for a in answers)
            return FANOUT

        rates = {"ours": [], "theirs": []}  # type: dict[str, list[float]]
        for name in ("ours", "theirs", "theirs", "ours"):
            rates[name].append(await _async_rate(seconds / 2, ours if name == "ours" else theirs))
        a, b = sum(rates["ours"]) / 2, sum(rates["theirs"]) / 2
        return {"skyhooks": a, "client": b, "ratio": a / b, "client_class": publisher.client_class.__name__}

    return asyncio.run(main())


def gevent(urls: list[str], seconds: float) -> dict[str, float]:
    from gevent import monkey

    monkey.patch_all()
    import gevent as g
    from gevent.pool import Pool
    from geventhttpclient import HTTPClient

    from skyhooks.gevent import Publisher

    secret, (store, message) = _setup(urls)
    publisher = Publisher(store, secret)
    clients = {u: HTTPClient.from_url(u, concurrency=publisher.concurrency) for u in urls}
    headers = dict(message.headers)
    fan = Pool(IN_FLIGHT * FANOUT)

    def ours() -> int:
        assert len(publisher.notify(KEYS, DATA).delivered) == FANOUT
        return FANOUT

    def post(url: str) -> int:
        response = clients[url].request("POST", "/hook", body=message.body, headers=headers)
        response.read()
        return int(response.status_code)

    def theirs() -> int:
        assert all(status == 200 for status in fan.map(post, urls))
        return FANOUT

    def rate(one_round: Callable[[], int], seconds_: float) -> float:
        stop = time.monotonic() + seconds_
        counts = [0] * IN_FLIGHT

        def loop(i: int) -> None:
            while time.monotonic() < stop:
                counts[i] += one_round()

        started = time.monotonic()
        g.joinall([g.spawn(loop, i) for i in range(IN_FLIGHT)])
        return sum(counts) / (time.monotonic() - started)

    return _alternate(seconds, lambda s: rate(ours, s), lambda s: rate(theirs, s))


def twisted(urls: list[str], seconds: float) -> dict[str, float]:
    import treq
    from treq.client import HTTPClient
    from twisted.internet import defer, reactor, task
    from twisted.web.client import Agent, HTTPConnectionPool
    from twisted.web.http_headers import Headers

    from skyhooks.twisted import Publisher

    secret, (store, message) = _setup(urls)
    publisher = Publisher(store, secret)
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = publisher.concurrency
    client = HTTPClient(Agent(reactor, pool=pool))  # one client, as the publisher's transport has
    headers = Headers({k: [v] for k, v in message.headers.items()})
    result: dict[str, Any] = {}

    async def ours() -> int:
        report = await publisher.notify(KEYS, DATA)
        assert len(report.delivered) == FANOUT
        return FANOUT

    async def post(url: str) -> int:  # each request as the publisher's transport makes it
        response = await client.post(
            url, data=message.body, headers=headers, allow_redirects=False, unbuffered=True
        )
        await treq.content(response)
        return int(response.code)

    async def theirs() -> int:
        codes = await defer.gatherResults([defer.Deferred.fromCoroutine(post(u)) for u in urls])
        assert all(code == 200 for code in codes)
        return FANOUT

    async def rate(one_round: Callable[[], Any], seconds_: float) -> float:
        stop = time.monotonic() + seconds_
        done = 0

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < stop:
                posts = await one_round()
                done += posts  # not "done += await ...": that reads done before awaiting

        started = time.monotonic()
        await defer.gatherResults([defer.Deferred.fromCoroutine(loop()) for _ in range(IN_FLIGHT)])
        return done / (time.monotonic() - started)

    async def main(_: Any) -> None:
        a1 = await rate(ours, seconds / 2)
        b1 = await rate(theirs, seconds / 2)
        b2 = await rate(theirs, seconds / 2)
        a2 = await rate(ours, seconds / 2)
        a, b = (a1 + a2) / 2, (b1 + b2) / 2
        result.update(skyhooks=a, client=b, ratio=a / b)
        print(json.dumps(result), flush=True)  # react() exits the process: report from inside
        await pool.closeCachedConnections()
        await publisher.close()

    task.react(lambda r: defer.Deferred.fromCoroutine(main(r)))  # exits the process
    return result


SENDERS = {"blocking": blocking, "tornado": tornado, "gevent": gevent, "twisted": twisted}
CLIENTS = {
    "blocking": "urllib3 + threads",
    "tornado": "AsyncHTTPClient",
    "gevent": "geventhttpclient",
    "twisted": "treq",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--only", default=",".join(SENDERS))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one sender here
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = SENDERS[args.one](json.loads(args.urls), args.seconds)
        if args.one != "twisted":  # twisted's reports from inside the reactor, which exits
            print(json.dumps(result), flush=True)
        return
    rows = []
    with receivers(FANOUT) as urls:
        for name in args.only.split(","):
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.clients",
                    "--one",
                    name,
                    "--urls",
                    json.dumps(urls),
                    "--seconds",
                    str(args.seconds),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if not lines or not json.loads(lines[-1]):
                raise SystemExit(f"{name} failed:\n{out.stderr[-2000:]}")
            rows.append((name, json.loads(lines[-1])))
    print(
        f"\nPOSTs/s to {FANOUT} raw receivers, {IN_FLIGHT} POSTs in flight, {args.seconds:.0f} s per sender\n"
    )
    print("| publisher | skyhooks POSTs/s | its client alone | client | skyhooks / client |")
    print("|---|---:|---:|---|---:|")
    for name, r in rows:
        client = CLIENTS[name] + (f" ({r['client_class']})" if "client_class" in r else "")
        print(f"| {name} | {r['skyhooks']:,.0f} | {r['client']:,.0f} | {client} | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
