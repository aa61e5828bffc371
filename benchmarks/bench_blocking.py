"""The blocking publisher's POSTs/s to 4 local receivers, against raw clients.

    python -m benchmarks.bench_blocking [--seconds 5] [--callers 1]

Each notify fans out to 4 raw receiver processes (``benchmarks/raw_receiver.py``)
listed in a ``memory://`` store. Baselines, in the same run, send the same bytes
to the same receivers with the same fan-out (a thread pool of the same size):
urllib3 alone (our transport, no skyhooks work: the ceiling for this design) and
``requests`` (what most code would use). Ratios are skyhooks / baseline.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import urllib3

from benchmarks.common import received_count, receivers
from skyhooks import Publisher, Topic, generate_secret
from skyhooks.core.protocol import Signer


def run_for(seconds: float, callers: int, one_round: Callable[[], int]) -> float:
    """Call *one_round* (returns POSTs done) from *callers* threads for *seconds*; POSTs/s."""
    stop = time.monotonic() + seconds
    counts = [0] * callers

    def loop(i: int) -> None:
        while time.monotonic() < stop:
            counts[i] += one_round()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--callers", type=int, default=1, help="threads calling notify at once")
    args = parser.parse_args()
    secret = generate_secret()
    message = Signer(secret).build({"account_id": 42}, {"progress": 50, "step": "resizing images"})
    headers = dict(message.headers)
    with receivers(4) as urls:
        publisher = Publisher("memory://", secret)
        for url in urls:
            publisher.store.add(url, {Topic("account_id", "42")}, ttl=3600)

        def skyhooks_round() -> int:
            report = publisher.notify({"account_id": 42}, {"progress": 50, "step": "resizing images"})
            assert len(report.delivered) == 4, report
            return 4

        pool = ThreadPoolExecutor(publisher.concurrency)
        http = urllib3.PoolManager(maxsize=publisher.concurrency, retries=False)

        def urllib3_round() -> int:
            responses = list(
                pool.map(lambda u: http.request("POST", u, body=message.body, headers=headers), urls)
            )
            assert all(r.status == 200 for r in responses)
            return 4

        import requests

        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=publisher.concurrency))

        def requests_round() -> int:
            responses = list(pool.map(lambda u: session.post(u, data=message.body, headers=headers), urls))
            assert all(r.status_code == 200 for r in responses)
            return 4

        results = {}
        for name, fn in (
            ("skyhooks.Publisher", skyhooks_round),
            ("urllib3 + threads", urllib3_round),
            ("requests + threads", requests_round),
        ):
            fn()  # warm the connections
            results[name] = run_for(args.seconds, args.callers, fn)
        total = sum(received_count(u.replace("/hook", "/count")) for u in urls)
        publisher.close()
    ours = results["skyhooks.Publisher"]
    print(f"\nBlocking publisher, 4 receivers, {args.callers} calling thread(s), {args.seconds:.0f} s each\n")
    print("| sender | POSTs/s | skyhooks / sender |")
    print("|---|---:|---:|")
    for name, rate in results.items():
        print(f"| {name} | {rate:,.0f} | {ours / rate:.2f} |")
    print(f"\n(receivers answered {total:,} POSTs in all)")


if __name__ == "__main__":
    main()
