"""The gevent adapter against bare gevent, measured side by side in one run.

    python -m benchmarks.bench_gevent [--seconds 4]

1. Receive: wrk POSTs signed webhooks to ``WebhookApp`` (verify, parse, dispatch to
   one sync callback, in a greenlet) and the same JSON to a bare WSGI app that only
   parses it; both in a ``skyhooks.gevent.WSGIServer`` process of their own,
   alternated A/B twice.
2. Publish: ``Publisher.notify`` to 4 raw receivers listed in a ``memory://`` store,
   16 notifies in flight (greenlets), against geventhttpclient alone POSTing the same
   bytes to the same 4 URLs, 16 rounds of 4 concurrent POSTs in flight.
3. Hub lag while the MongoDB store is down: the instance program, the store
   stopped, callbacks registered; the worst lateness of its 10 ms ticker.

``python -m benchmarks.bench_gevent serve skyhooks|bare --secret S`` runs one
receive server (this file is also its own server program).
"""

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

# Only run as a program, patched above before anything else is imported.
import argparse
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from benchmarks.common import median, receivers, signed_requests, start_process, wrk_plain, wrk_signed
from skyhooks import Topic, generate_secret
from skyhooks.core.protocol import Signer

KEYS = {"account_id": 1}
DATA = {"progress": 50, "step": "resizing images"}
IN_FLIGHT = 16


# -- the receive servers -----------------------------------------------------------------


def serve(kind: str, secret: str) -> None:
    import socket

    from skyhooks.gevent import Registry, WebhookApp, WSGIServer

    def bare(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        json.loads(environ["wsgi.input"].read())
        body = b'{"status":"ok","notified":1}'
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    app: Callable[..., Any] = bare
    if kind == "skyhooks":
        registry = Registry(f"http://127.0.0.1:{port}/skyhooks", "memory://", secret)
        registry.register(KEYS, lambda message: None)
        registry.start()
        app = WebhookApp(registry)
    server = WSGIServer(listener, app, log=None)
    server.start()
    print(f"LISTENING {port}", flush=True)
    server.serve_forever()


def bench_receive(seconds: int) -> dict[str, Any]:
    secret = generate_secret()
    body = signed_requests(secret, 1, KEYS, DATA)[0][1]
    rates: dict[str, list[float]] = {"skyhooks": [], "bare": []}
    for _ in range(2):
        for kind in ("skyhooks", "bare"):
            cmd = [sys.executable, "-m", "benchmarks.bench_gevent", "serve", kind, "--secret", secret]
            with start_process(cmd) as server:
                url = f"http://127.0.0.1:{server.port}/skyhooks"
                if kind == "skyhooks":
                    rates[kind].append(wrk_signed(url, secret, seconds, keys=KEYS, rate_hint=10_000))
                else:
                    rates[kind].append(wrk_plain(url, body, seconds))
    ratios = [a / b for a, b in zip(rates["skyhooks"], rates["bare"], strict=True)]
    return {"rates": rates, "ratio": median(ratios)}


# -- publish -------------------------------------------------------------------------------


def for_seconds(seconds: float, one_round: Callable[[], int]) -> float:
    """Run *one_round* (returns POSTs done) in IN_FLIGHT greenlets for *seconds*; POSTs/s."""
    import gevent

    one_round()  # warm the connections
    stop = time.monotonic() + seconds
    counts = [0] * IN_FLIGHT

    def loop(i: int) -> None:
        while time.monotonic() < stop:
            counts[i] += one_round()

    started = time.monotonic()
    gevent.joinall([gevent.spawn(loop, i) for i in range(IN_FLIGHT)], raise_error=True)
    return sum(counts) / (time.monotonic() - started)


def bench_publish(urls: list[str], seconds: float) -> tuple[float, float]:
    from gevent.pool import Pool
    from geventhttpclient import HTTPClient

    from skyhooks.gevent import Publisher

    secret = generate_secret()
    publisher = Publisher("memory://", secret)
    for url in urls:
        publisher.store.add(url, {Topic("account_id", "1")}, ttl=3600)
    message = Signer(secret).build(KEYS, DATA)
    headers = dict(message.headers)
    clients = {url: HTTPClient.from_url(url, concurrency=publisher.concurrency) for url in urls}

    def skyhooks_round() -> int:
        report = publisher.notify(KEYS, DATA)
        assert len(report.delivered) == len(urls), report
        return len(urls)

    def post(url: str) -> int:
        response = clients[url].request("POST", "/hook", body=message.body, headers=headers)
        response.read()
        return response.status_code

    def client_round() -> int:
        assert Pool(len(urls)).map(post, urls) == [200] * len(urls)
        return len(urls)

    ours = for_seconds(seconds, skyhooks_round)
    theirs = for_seconds(seconds, client_round)
    publisher.close()
    for client in clients.values():
        client.close()
    return ours, theirs


# -- hub lag during a store outage ------------------------------------------------------------


def bench_outage_lag(seconds: float) -> dict[str, Any] | None:
    from tests.support.mongo import MongoServer, fresh_database, mongoeco_python

    python = mongoeco_python()
    if python is None:
        return None
    mongo = MongoServer(python)
    mongo.start()
    try:
        cmd = [sys.executable, "-m", "tests.adapters.instances.gevent", "--store",
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
    parser.add_argument("--seconds", type=int, default=4, help="per measured run (wrk takes whole seconds)")
    sub = parser.add_subparsers(dest="command")
    server = sub.add_parser("serve")
    server.add_argument("kind", choices=["skyhooks", "bare"])
    server.add_argument("--secret", required=True)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.kind, args.secret)
        return

    receive = bench_receive(args.seconds)
    with receivers(4) as urls:
        ours, theirs = bench_publish(urls, args.seconds * 0.75)
    lag = bench_outage_lag(3.0)

    print(f"\ngevent adapter, {args.seconds:.0f} s per run; ratio = skyhooks / baseline\n")
    print("| measure | skyhooks | baseline | ratio |")
    print("|---|---:|---:|---:|")
    rounds = zip(receive["rates"]["skyhooks"], receive["rates"]["bare"], strict=True)
    for i, (mine, bare) in enumerate(rounds):
        print(f"| receive req/s, round {i + 1} (vs bare pywsgi app) | {mine:,.0f} | {bare:,.0f} "
              f"| {mine / bare:.2f} |")
    print(f"| receive, median ratio | | | **{receive['ratio']:.2f}** |")
    print(f"| publish POSTs/s, 4 receivers, {IN_FLIGHT} in flight (geventhttpclient alone) "
          f"| {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")
    if lag is None:
        print("| hub lag, MongoDB down | n/a: set SKYHOOKS_MONGOECO_PYTHON | | |")
    else:
        ticks, worst = lag["samples"], lag["max_lag_ms"]
        print(f"| hub lag, MongoDB down 3 s: max ms ({ticks} ticks) | {worst:.1f} | | |")


if __name__ == "__main__":
    main()
