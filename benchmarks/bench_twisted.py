"""The Twisted adapter against bare twisted.web and treq, measured side by side in one run.

    python -m benchmarks.bench_twisted [--seconds 3]

1. Receive: wrk POSTs signed webhooks to ``WebhookResource`` (verify, parse, dispatch
   to one sync callback) and the same-sized JSON to a bare twisted.web resource that
   only parses it; each in a server process of its own, alternated in 3 rounds
   (A B, B A, A B).
2. Publish: ``Publisher.notify`` to 4 raw receivers listed in a ``memory://`` store,
   16 notifies in flight, against treq alone (same persistent pool settings) POSTing
   the same bytes to the same 4 URLs, 16 rounds in flight; alternated in 4 rounds.
3. Reactor lag while the MongoDB store is down: the instance program, the store
   stopped, callbacks registered; the worst lateness of its 10 ms ticker.

``python -m benchmarks.bench_twisted serve skyhooks|bare --secret S`` runs one
receive server (this file is also its own server program).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from benchmarks.common import median, receivers, signed_requests, start_process, wrk
from skyhooks import Topic, generate_secret
from skyhooks.core.protocol import Signer

KEYS = {"account_id": 1}
DATA = {"progress": 50, "step": "resizing images"}
IN_FLIGHT = 16


# -- the receive servers -----------------------------------------------------------------


def serve(kind: str, secret: str) -> None:
    from twisted.internet import reactor
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    from skyhooks.twisted import Registry, WebhookRequest, WebhookResource

    class BareResource(Resource):
        isLeaf = True

        def render_POST(self, request: Any) -> bytes:
            json.loads(request.content.read())
            request.setHeader("Content-Type", "application/json")
            return b'{"status":"ok","notified":1}'

    root = Resource()
    # The same request factory for both, so only the resource differs.
    port = reactor.listenTCP(0, Site(root, requestFactory=WebhookRequest), interface="127.0.0.1")
    number = port.getHost().port
    if kind == "skyhooks":
        registry = Registry(f"http://127.0.0.1:{number}/skyhooks", "memory://", secret)
        registry.register(KEYS, lambda message: None)
        registry.start()
        root.putChild(b"skyhooks", WebhookResource(registry))
    else:
        root.putChild(b"skyhooks", BareResource())
    print(f"LISTENING {number}", flush=True)
    reactor.run()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process *pid* so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_receive(seconds: int, rounds: int = 3) -> dict[str, Any]:
    """Requests/s, and the server's CPU time per request: on a shared machine the
    throughput swings with other work, CPU per request much less."""
    secret = generate_secret()
    body = signed_requests(secret, 1, KEYS, DATA)[0][1]
    rates: dict[str, list[float]] = {"skyhooks": [], "bare": []}
    cpu_us: dict[str, list[float]] = {"skyhooks": [], "bare": []}
    with contextlib.ExitStack() as stack:
        servers = {}
        for kind in rates:
            cmd = [sys.executable, "-m", "benchmarks.bench_twisted", "serve", kind, "--secret", secret]
            servers[kind] = stack.enter_context(start_process(cmd))
        # A B, B A, A B: a drift in the machine's speed (other work, warm caches) favours neither.
        for round_ in range(rounds):
            for kind in ("skyhooks", "bare") if round_ % 2 == 0 else ("bare", "skyhooks"):
                url = f"http://127.0.0.1:{servers[kind].port}/skyhooks"
                pid = servers[kind].process.pid
                if kind == "skyhooks":
                    requests = signed_requests(secret, 8_000 * seconds, KEYS, DATA)
                else:
                    requests = [({"Content-Type": "application/json"}, body)]
                used = cpu_seconds(pid)
                rate = wrk_checked(url, requests, seconds)
                rates[kind].append(rate)
                cpu_us[kind].append((cpu_seconds(pid) - used) / (rate * seconds) * 1e6)
    ratios = [a / b for a, b in zip(rates["skyhooks"], rates["bare"], strict=True)]
    cpu_ratios = [a / b for a, b in zip(cpu_us["skyhooks"], cpu_us["bare"], strict=True)]
    return {"rates": rates, "ratio": median(ratios), "cpu_us": cpu_us, "cpu_ratio": median(cpu_ratios)}


def wrk_checked(url: str, requests: list[tuple[dict[str, str], bytes]], seconds: int) -> float:
    """wrk's requests/s; every answer must be 2xx and no signed request may repeat."""
    result = wrk(url, requests, seconds)
    assert not result.non_2xx and not result.socket_errors, result
    assert len(requests) == 1 or result.requests <= len(requests), "ids repeated: more requests needed"
    return result.requests_per_s


# -- publish -------------------------------------------------------------------------------


async def for_seconds(seconds: float, one_round: Callable[[], Any]) -> tuple[float, float]:
    """Run *one_round* (a Deferred of POSTs done) in IN_FLIGHT loops for *seconds*;
    POSTs/s and this process's CPU µs per POST (all threads)."""
    from twisted.internet.defer import Deferred, gatherResults

    await one_round()  # warm the connections
    stop = time.monotonic() + seconds
    done = 0

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < stop:
            posts = await one_round()
            done += posts

    started, cpu = time.monotonic(), time.process_time()
    await gatherResults([Deferred.fromCoroutine(loop()) for _ in range(IN_FLIGHT)])
    return done / (time.monotonic() - started), (time.process_time() - cpu) / done * 1e6


async def bench_publish(urls: list[str], seconds: float, rounds: int = 4) -> dict[str, Any]:
    import treq
    from treq.client import HTTPClient
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred, gatherResults
    from twisted.web.client import Agent, HTTPConnectionPool

    from skyhooks.twisted import Publisher

    secret = generate_secret()
    publisher = Publisher("memory://", secret)
    for url in urls:
        publisher.store.add(url, {Topic("account_id", "1")}, ttl=3600)
    message = Signer(secret).build(KEYS, DATA)
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = publisher.concurrency
    client = HTTPClient(Agent(reactor, pool=pool))

    async def skyhooks_round() -> int:
        report = await publisher.notify(KEYS, DATA)
        assert len(report.delivered) == len(urls), report
        return len(urls)

    async def post(url: str) -> int:
        response = await client.post(url, data=message.body, headers=dict(message.headers))
        await treq.content(response)
        return response.code  # type: ignore[no-any-return]

    async def treq_round() -> int:
        codes = await gatherResults([Deferred.fromCoroutine(post(url)) for url in urls])
        assert all(code == 200 for code in codes), codes
        return len(urls)

    contenders = {"skyhooks": skyhooks_round, "treq": treq_round}
    rates: dict[str, list[float]] = {"skyhooks": [], "treq": []}
    cpu_us: dict[str, list[float]] = {"skyhooks": [], "treq": []}
    for round_ in range(rounds):  # A B, B A, ...
        for name in ("skyhooks", "treq") if round_ % 2 == 0 else ("treq", "skyhooks"):
            rate, cpu = await for_seconds(seconds, lambda one=contenders[name]: Deferred.fromCoroutine(one()))
            rates[name].append(rate)
            cpu_us[name].append(cpu)
    await publisher.close()
    await pool.closeCachedConnections()
    return {"rates": rates, "cpu_us": cpu_us}


def run_publish(urls: list[str], seconds: float) -> dict[str, Any]:
    """Run the publish benchmark on the reactor (which runs once per process: do this last)."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    outcome: list[Any] = []

    def start() -> None:
        finished = Deferred.fromCoroutine(bench_publish(urls, seconds))
        finished.addBoth(outcome.append).addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    if not isinstance(outcome[0], dict):
        outcome[0].raiseException()
    return outcome[0]  # type: ignore[no-any-return]


# -- reactor lag during a store outage ------------------------------------------------------------


def bench_outage_lag(seconds: float) -> dict[str, Any] | None:
    from tests.support.mongo import MongoServer, fresh_database, mongoeco_python

    python = mongoeco_python()
    if python is None:
        return None
    mongo = MongoServer(python)
    mongo.start()
    try:
        cmd = [
            sys.executable,
            "-m",
            "tests.adapters.instances.twisted",
            "--store",
            mongo.url(fresh_database()),
            "--secret",
            generate_secret(),
            "--ttl",
            "3",
            "--port",
            "0",
        ]
        with start_process(cmd) as instance:

            def control(name: str, payload: Any = None) -> Any:
                data = None if payload is None else json.dumps(payload).encode()
                url = f"http://127.0.0.1:{instance.port}/control/{name}"
                with urllib.request.urlopen(urllib.request.Request(url, data), timeout=10) as response:
                    return json.loads(response.read())

            control("register", {"keys": {"account_id": 0}, "name": "before"})
            mongo.stop()
            control("reset", {})
            for n in range(1, 6):
                control("register", {"keys": {"account_id": n}, "name": f"cb{n}", "wait": False})
            time.sleep(seconds)  # renewals and retries fail meanwhile (2 s server selection each)
            return control("lag")  # type: ignore[no-any-return]
    finally:
        mongo.stop()


# -- the table -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=3, help="per measured run (wrk takes whole seconds)")
    sub = parser.add_subparsers(dest="command")
    server = sub.add_parser("serve")
    server.add_argument("kind", choices=["skyhooks", "bare"])
    server.add_argument("--secret", required=True)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.kind, args.secret)
        return

    receive = bench_receive(args.seconds)
    lag = bench_outage_lag(3.0)
    with receivers(4) as urls:
        publish = run_publish(urls, args.seconds / 2)

    print(f"\nTwisted adapter, {args.seconds:.0f} s per run; ratio = skyhooks / baseline\n")
    print("| measure | skyhooks | baseline | ratio |")
    print("|---|---:|---:|---:|")
    rounds = zip(receive["rates"]["skyhooks"], receive["rates"]["bare"], strict=True)
    for i, (ours, bare) in enumerate(rounds):
        print(
            f"| receive req/s, round {i + 1} (vs bare twisted.web resource) | {ours:,.0f} | {bare:,.0f} "
            f"| {ours / bare:.2f} |"
        )
    print(f"| receive req/s, median ratio | | | **{receive['ratio']:.2f}** |")
    ours, bare = median(receive["cpu_us"]["skyhooks"]), median(receive["cpu_us"]["bare"])
    print(
        f"| receive, server CPU µs per request (median) | {ours:.0f} | {bare:.0f} "
        f"| **{receive['cpu_ratio']:.2f}** |"
    )
    rates, cpu_us = publish["rates"], publish["cpu_us"]
    rounds = zip(rates["skyhooks"], rates["treq"], strict=True)
    for i, (ours, alone) in enumerate(rounds):
        print(
            f"| publish POSTs/s, 4 receivers, {IN_FLIGHT} in flight, round {i + 1} (vs treq alone) "
            f"| {ours:,.0f} | {alone:,.0f} | {ours / alone:.2f} |"
        )
    ratio = median([a / b for a, b in zip(rates["skyhooks"], rates["treq"], strict=True)])
    print(f"| publish POSTs/s, median ratio | | | **{ratio:.2f}** |")
    ours, alone = median(cpu_us["skyhooks"]), median(cpu_us["treq"])
    cpu_ratio = median([a / b for a, b in zip(cpu_us["skyhooks"], cpu_us["treq"], strict=True)])
    print(f"| publish, publisher CPU µs per POST (median) | {ours:.0f} | {alone:.0f} | **{cpu_ratio:.2f}** |")
    if lag is None:
        print("| reactor lag, MongoDB down | n/a: set SKYHOOKS_MONGOECO_PYTHON | | |")
    else:
        ticks, worst = lag["samples"], lag["max_lag_ms"]
        print(f"| reactor lag, MongoDB down 3 s: max ms ({ticks} ticks) | {worst:.1f} | | |")


if __name__ == "__main__":
    main()
