"""The Tornado adapter against bare Tornado, measured side by side in one run.

    python -m benchmarks.bench_tornado [--seconds 3]

1. Receive: wrk POSTs signed webhooks to ``WebhookHandler`` (verify, parse, dispatch
   to one sync callback) and the same-sized JSON to a bare ``RequestHandler`` that only
   parses it; each in a server process of its own, alternated in 3 rounds (A B, B A, A B).
2. Publish: ``Publisher.notify`` to 4 raw receivers listed in a ``memory://`` store,
   16 notifies in flight, against ``AsyncHTTPClient`` alone POSTing the same bytes to
   the same 4 URLs, 16 rounds in flight; both with the curl and the simple client.
3. Loop lag while the MongoDB store is down: the instance program, the store
   stopped, callbacks registered; the worst lateness of its 10 ms ticker.

``python -m benchmarks.bench_tornado serve skyhooks|bare --secret S`` runs one
receive server (this file is also its own server program).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.common import median, receivers, signed_requests, start_process, wrk
from skyhooks import Topic, generate_secret
from skyhooks.core.protocol import Signer

KEYS = {"account_id": 1}
DATA = {"progress": 50, "step": "resizing images"}
IN_FLIGHT = 16


# -- the receive servers -----------------------------------------------------------------


def serve(kind: str, secret: str) -> None:
    from tornado.httpserver import HTTPServer
    from tornado.ioloop import IOLoop
    from tornado.netutil import bind_sockets
    from tornado.web import Application, RequestHandler

    from skyhooks.tornado import Registry, WebhookHandler

    class BareHandler(RequestHandler):
        def post(self) -> None:
            json.loads(self.request.body)
            self.set_header("Content-Type", "application/json")
            self.finish(b'{"status":"ok","notified":1}')

    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    if kind == "skyhooks":
        registry = Registry(f"http://127.0.0.1:{port}/skyhooks", "memory://", secret)
        registry.register(KEYS, lambda message: None)
        registry.start()
        app = Application([(r"/skyhooks", WebhookHandler, {"registry": registry})])
    else:
        app = Application([(r"/skyhooks", BareHandler)])
    HTTPServer(app).add_sockets(sockets)
    print(f"LISTENING {port}", flush=True)
    IOLoop.current().start()


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
            cmd = [sys.executable, "-m", "benchmarks.bench_tornado", "serve", kind, "--secret", secret]
            servers[kind] = stack.enter_context(start_process(cmd))
        # A B, B A, A B...: a drift in the machine's speed (other work, warm caches) favours neither.
        for round_ in range(rounds):
            for kind in ("skyhooks", "bare") if round_ % 2 == 0 else ("bare", "skyhooks"):
                url = f"http://127.0.0.1:{servers[kind].port}/skyhooks"
                pid = servers[kind].process.pid
                if kind == "skyhooks":
                    requests = signed_requests(secret, 10_000 * seconds, KEYS, DATA)
                    used = cpu_seconds(pid)
                    rate = wrk_checked(url, requests, seconds)
                else:
                    used = cpu_seconds(pid)
                    rate = wrk_checked(url, [({"Content-Type": "application/json"}, body)], seconds)
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


async def for_seconds(seconds: float, one_round: Callable[[], Awaitable[int]]) -> float:
    """Run *one_round* (returns POSTs done) in IN_FLIGHT loops for *seconds*; POSTs/s."""
    await one_round()  # warm the connections
    stop = time.monotonic() + seconds
    done = 0

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < stop:
            posts = await one_round()  # not "done += await ...": that reads done before awaiting
            done += posts

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(IN_FLIGHT)))
    return done / (time.monotonic() - started)


async def bench_publish(urls: list[str], seconds: float, client_class: Any) -> tuple[float, float]:
    from tornado.httpclient import HTTPRequest

    from skyhooks.tornado import Publisher

    secret = generate_secret()
    publisher = Publisher("memory://", secret, client_class=client_class)
    for url in urls:
        publisher.store.add(url, {Topic("account_id", "1")}, ttl=3600)
    message = Signer(secret).build(KEYS, DATA)
    client = client_class(force_instance=True, max_clients=publisher.concurrency)

    async def skyhooks_round() -> int:
        report = await publisher.notify(KEYS, DATA)
        assert len(report.delivered) == len(urls), report
        return len(urls)

    async def client_round() -> int:
        requests = [HTTPRequest(url, "POST", dict(message.headers), message.body) for url in urls]
        responses = await asyncio.gather(*(client.fetch(request) for request in requests))
        assert all(response.code == 200 for response in responses)
        return len(urls)

    # A B B A, each half the time: drift in the machine's speed favours neither.
    ours = await for_seconds(seconds / 2, skyhooks_round)
    theirs = await for_seconds(seconds / 2, client_round)
    theirs = (theirs + await for_seconds(seconds / 2, client_round)) / 2
    ours = (ours + await for_seconds(seconds / 2, skyhooks_round)) / 2
    publisher.close()
    client.close()
    return ours, theirs


# -- loop lag during a store outage ------------------------------------------------------------


def bench_outage_lag(seconds: float) -> dict[str, Any] | None:
    from tests.support.mongo import MongoServer, fresh_database, mongoeco_python

    python = mongoeco_python()
    if python is None:
        return None
    mongo = MongoServer(python)
    mongo.start()
    try:
        cmd = [sys.executable, "-m", "tests.adapters.instances.tornado", "--store",
               mongo.url(fresh_database()), "--secret", generate_secret(), "--ttl", "3", "--port", "0"]
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

    from tornado.simple_httpclient import SimpleAsyncHTTPClient

    clients: list[Any] = []
    try:
        from tornado.curl_httpclient import CurlAsyncHTTPClient

        clients.append(CurlAsyncHTTPClient)
    except ImportError:
        pass
    clients.append(SimpleAsyncHTTPClient)

    receive = bench_receive(args.seconds)
    publish = {}
    with receivers(4) as urls:
        for client_class in clients:
            rates = asyncio.run(bench_publish(urls, args.seconds * 0.75, client_class))
            publish[client_class.__name__] = rates
    lag = bench_outage_lag(3.0)

    print(f"\nTornado adapter, {args.seconds:.0f} s per run; ratio = skyhooks / baseline\n")
    print("| measure | skyhooks | baseline | ratio |")
    print("|---|---:|---:|---:|")
    rounds = zip(receive["rates"]["skyhooks"], receive["rates"]["bare"], strict=True)
    for i, (ours, bare) in enumerate(rounds):
        print(f"| receive req/s, round {i + 1} (vs bare RequestHandler) | {ours:,.0f} | {bare:,.0f} "
              f"| {ours / bare:.2f} |")
    print(f"| receive req/s, median ratio | | | **{receive['ratio']:.2f}** |")
    ours, bare = median(receive["cpu_us"]["skyhooks"]), median(receive["cpu_us"]["bare"])
    print(f"| receive, server CPU µs per request (median) | {ours:.0f} | {bare:.0f} "
          f"| **{receive['cpu_ratio']:.2f}** |")
    for name, (ours, theirs) in publish.items():
        print(f"| publish POSTs/s, 4 receivers, {IN_FLIGHT} in flight ({name} alone) "
              f"| {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")
    if lag is None:
        print("| loop lag, MongoDB down | n/a: set SKYHOOKS_MONGOECO_PYTHON | | |")
    else:
        ticks, worst = lag["samples"], lag["max_lag_ms"]
        print(f"| loop lag, MongoDB down 3 s: max ms ({ticks} ticks) | {worst:.1f} | | |")


if __name__ == "__main__":
    main()
