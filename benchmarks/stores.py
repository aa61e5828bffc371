"""Figure 4: store scaling. Lookup latency (p50/p99 of one-key lookups of random
subscribed topics) and add/renew throughput as the registry grows from 1k
subscriptions up, for SQLite, Redis, a 3-node Redis Cluster and the MongoDB-wire
store. The store is grown in place between sizes: 100 instance URLs share the
subscriptions, one topic each.

Redis and the cluster are filled through the store's own ``add``, 10k topics of
one URL per call (one pipeline per node, where an add per subscription would be
a round trip each: the log says how long each fill took), and their memory is
read after each fill:
``INFO memory`` before and after, summed over the nodes, and ``MEMORY USAGE``
of sampled keys (the capacity model in docs/capacity.md is built on it).

MongoDB here is ``mongoeco``, an emulator that takes ~30 ms per upsert: it is
filled with ``insert_many`` of the store's own documents (the fill is not what is
measured) and its sizes stop where one size takes more than a few seconds to fill
and measure; the report says where.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchmarks.delivery import percentiles
from benchmarks.fleet import cpu_seconds
from skyhooks import Topic

URLS = [f"http://10.0.{i // 250}.{i % 250}:8001/skyhooks" for i in range(100)]
TTL = 3600
FILL_BATCH = 10_000  # topics per store.add while filling Redis: one pipeline (per node) each
MEMORY_SAMPLES = 1000  # topic keys MEMORY USAGE reads at each size


def fill(store: Any, kind: str, start: int, stop: int) -> None:
    """Subscriptions start..stop-1: topic account_id=i for URLS[i % 100]."""
    if kind.startswith("redis"):
        for u, url in enumerate(URLS):
            mine = range(start + (u - start) % len(URLS), stop, len(URLS))
            for at in range(0, len(mine), FILL_BATCH):
                store.add(url, [Topic("account_id", str(i)) for i in mine[at : at + FILL_BATCH]], TTL)
        return
    if kind == "mongodb":
        expires = datetime.now(timezone.utc) + timedelta(seconds=TTL)
        for at in range(start, stop, 100):  # small batches: each takes seconds in mongoeco
            docs = [
                {"name": "account_id", "value": str(i), "url": URLS[i % 100], "expires_at": expires}
                for i in range(at, min(stop, at + 100))
            ]
            store.collection.insert_many(docs, ordered=False)
        return
    # Straight into the store's table in key order, one transaction, the url index
    # rebuilt after: store.add per URL scatters inserts over both indexes and took
    # ~30-60 s for 1M rows here. The measured operations go through the store.
    expires = time.time() + TTL
    rows = (("account_id", str(i), URLS[i % 100], expires) for i in sorted(range(start, stop), key=str))
    conn = store._connection()
    conn.execute("DROP INDEX IF EXISTS skyhooks_subscriptions_url")
    with conn:
        conn.executemany(
            "INSERT INTO skyhooks_subscriptions (name, value, url, expires_at) VALUES (?, ?, ?, ?)", rows
        )
    conn.execute("CREATE INDEX skyhooks_subscriptions_url ON skyhooks_subscriptions (url)")


def measure(
    store: Any,
    size: int,
    lookups: int,
    adds: int,
    renews: int,
    renew_topics: int,
    server_pids: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Lookup latency, add and renew rates at *size*; and the CPU time each
    operation took in this process (the client: a publisher's or registry's
    share) and in the *server_pids* (Redis), what a capacity model scales."""
    rng = random.Random(size)
    cpu = [(time.process_time(), sum(cpu_seconds(pid) for pid in server_pids))]

    def spent(count: int) -> dict[str, float]:
        cpu.append((time.process_time(), sum(cpu_seconds(pid) for pid in server_pids)))
        (client0, server0), (client1, server1) = cpu[-2:]
        return {"client": (client1 - client0) / count * 1e6, "server": (server1 - server0) / count * 1e6}

    # Five rounds, and each percentile is the median of the rounds' own: a p99 of
    # microsecond timings otherwise moves 2x with one burst of other work on a
    # shared machine. A first round of 500 warms the caches and is not counted.
    rounds: list[dict[str, float]] = []
    for count in [500] + [lookups // 5] * 5:
        times = []
        for _ in range(count):
            topic = Topic("account_id", str(rng.randrange(size)))
            t0 = time.perf_counter()
            found = store.lookup({topic})
            times.append((time.perf_counter() - t0) * 1e6)
            assert len(found) == 1, (topic, found)
        rounds.append(percentiles(times))
    lookup = {key: statistics.median(r[key] for r in rounds[1:]) for key in rounds[1]}
    lookup["samples"] = sum(r["samples"] for r in rounds[1:])
    lookup_cpu = spent(500 + lookups // 5 * 5)
    # add: what a registry does when a topic gets its first local callback
    t0 = time.perf_counter()
    for i in range(adds):
        store.add(URLS[i % 100], [Topic("user_id", f"{size}-{i}")], TTL)
    add_rate = adds / (time.perf_counter() - t0)
    add_cpu = spent(adds)
    # renew: one instance's whole set of renew_topics topics, every ttl/3
    mine = [Topic("session", f"{size}-{i}") for i in range(renew_topics)]
    url = f"http://10.9.9.9:{size % 60000}/skyhooks"
    store.add(url, mine, TTL)
    spent(1)
    t0 = time.perf_counter()
    for _ in range(renews):
        store.renew(url, mine, TTL)
    renew_rate = renews / (time.perf_counter() - t0)
    renew_cpu = spent(renews * renew_topics)
    return {
        "size": size,
        "lookup_us": lookup,
        "adds_per_s": add_rate,
        "renews_per_s": renew_rate,
        "renew_topics": renew_topics,
        "renewed_topics_per_s": renew_rate * renew_topics,
        # CPU µs per lookup, per one-topic add, per renewed topic: client and server
        "cpu_us": {"lookup": lookup_cpu, "add": add_cpu, "renewed_topic": renew_cpu},
    }


def run_store(
    kind: str,
    store: Any,
    sizes: list[int],
    budget: float,
    log: Any,
    memory: Callable[[int, int], dict[str, Any]] | None = None,
    server_pids: tuple[int, ...] = (),
    **counts: int,
) -> dict[str, Any]:
    """*memory*, given, is called after each fill with (subscriptions, sizes
    measured before) and its answer kept in the row; *server_pids*' CPU time
    is read around each measured operation."""
    rows, have, stopped = [], 0, None
    for size in sizes:
        t0 = time.monotonic()
        cpu0 = time.process_time(), sum(cpu_seconds(pid) for pid in server_pids)
        fill(store, kind, have, size)
        filled = time.monotonic() - t0
        cpu1 = time.process_time(), sum(cpu_seconds(pid) for pid in server_pids)
        # Redis is filled through store.add, 10k topics a call: what renewing an
        # instance of 10k topics writes, and a sample big enough for /proc's 10 ms ticks.
        fill_cpu = {
            "client": (cpu1[0] - cpu0[0]) / (size - have) * 1e6,
            "server": (cpu1[1] - cpu0[1]) / (size - have) * 1e6,
        }
        have = size
        used = memory(size, len(rows)) if memory is not None else None
        row = measure(store, size, server_pids=server_pids, **counts)
        row["fill_seconds"] = filled
        row["fill_cpu_us"] = fill_cpu  # per subscription written
        row["seconds"] = time.monotonic() - t0
        if used is not None:
            row["memory"] = used
        rows.append(row)
        log(
            f"  {kind:13} {size:>9,} subs: lookup p50 {row['lookup_us']['p50']:7.0f} us p99 "
            f"{row['lookup_us']['p99']:7.0f} us; add {row['adds_per_s']:7,.0f}/s; renew "
            f"{row['renewed_topics_per_s']:7,.0f} topics/s  (fill {filled:.1f} s)"
            + (f"; {used['bytes_per_subscription']:.0f} bytes/subscription" if used else "")
        )
        if row["seconds"] > budget and size != sizes[-1]:
            stopped = f"stopped after {size:,}: that size took {row['seconds']:.0f} s (budget {budget:.0f} s)"
            log(f"  {kind}: {stopped}")
            break
    return {"rows": rows, "stopped": stopped}


def redis_memory(
    ports: list[int], store: Any, counts: dict[str, int]
) -> Callable[[int, int], dict[str, Any]]:
    """A *memory* reader for :func:`run_store`: what the subscriptions take in the
    Redis servers on *ports*, from ``INFO memory`` against the servers' empty
    baseline, and from ``MEMORY USAGE`` of sampled keys (every URL's index key,
    MEMORY_SAMPLES topic keys)."""
    import redis

    clients = [redis.Redis(port=port) for port in ports]

    def info() -> tuple[int, int]:
        stats = [client.info("memory") for client in clients]
        return sum(s["used_memory"] for s in stats), sum(s["used_memory_rss"] for s in stats)

    empty, empty_rss = info()
    # What measure() adds at each size beyond the fill: its adds and its one renewed URL.
    extra_per_size = counts["adds"] + counts["renew_topics"]

    def usage(key: str) -> int:
        for client in clients:  # the node holding the key answers; the others say nil
            try:
                found = client.memory_usage(key, samples=0)
            except redis.ResponseError:  # MOVED: a cluster node that does not hold the key
                continue
            if found is not None:
                return int(found)
        raise RuntimeError(f"no node holds {key!r}")

    def read(size: int, before: int) -> dict[str, Any]:
        used, rss = info()
        subscriptions = size + before * extra_per_size
        rng = random.Random(size)
        topics = [Topic("account_id", str(rng.randrange(size))) for _ in range(min(size, MEMORY_SAMPLES))]
        topic_bytes = statistics.fmean(usage(store.topic_key(t)) for t in topics)
        url_bytes = sum(usage(store.url_key(url)) for url in URLS)
        return {
            "subscriptions": subscriptions,
            "used_memory": used - empty,
            "used_memory_rss": rss - empty_rss,
            "bytes_per_subscription": (used - empty) / subscriptions,
            "rss_bytes_per_subscription": (rss - empty_rss) / subscriptions,
            "topic_key_bytes": topic_bytes,  # one subscriber: its url and expiry
            "url_index_bytes_per_topic": url_bytes / size,
        }

    return read


def run(quick: bool, log: Any = print) -> dict[str, Any]:
    from skyhooks import open_store

    out: dict[str, Any] = {}
    # Quick stops at 100k: filling 1M rows alone takes ~30 s here.
    sizes = [1_000, 10_000, 100_000] if quick else [1_000, 10_000, 100_000, 1_000_000]
    counts = {
        "lookups": 10000 if quick else 50000,
        "adds": 300 if quick else 2000,
        "renews": 20 if quick else 100,
        "renew_topics": 100,
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/scale.db")
        out["sqlite"] = run_store("sqlite", store, sizes, 120, log, **counts)
        store.close()
        from tests.support.redis import RedisCluster, RedisServer

        for kind in ("redis", "redis-cluster"):
            folder = Path(tmp) / kind
            folder.mkdir()
            servers: Any = RedisServer(folder).start() if kind == "redis" else RedisCluster(folder).start()
            try:
                ports = [servers.port] if kind == "redis" else servers.ports
                store = open_store(servers.url(0) if kind == "redis" else servers.url())
                store.lookup([Topic("account_id", "0")])  # connected (a cluster: its layout read)
                memory = redis_memory(ports, store, counts)
                pids = tuple(servers.pids) if kind == "redis-cluster" else (servers.pid,)
                out[kind] = run_store(kind, store, sizes, 180, log, memory=memory, server_pids=pids, **counts)
                store.close()
            finally:
                servers.stop()
    from tests.support.mongo import MongoServer, fresh_database, mongoeco_python

    python = mongoeco_python()
    if python is None:
        out["mongodb"] = {"rows": [], "stopped": "no mongoeco Python found (SKYHOOKS_MONGOECO_PYTHON)"}
        return out
    mongo = MongoServer(python)
    mongo.start()
    try:
        store = open_store(mongo.url(fresh_database()))
        # ~20 ms per document even through insert_many: 1k takes ~20 s to fill, 10k
        # would take ~3 min, so the long run stops at 1k (quick: at 100).
        out["mongodb"] = run_store(
            "mongodb",
            store,
            [100] if quick else [100, 1_000],
            60,
            log,
            lookups=200 if quick else 1000,
            adds=20 if quick else 100,
            renews=2 if quick else 5,
            renew_topics=10,
        )
        out["mongodb"]["stopped"] = (
            f"stopped at {out['mongodb']['rows'][-1]['size']:,}: mongoeco (an emulator) writes "
            "~20-30 ms per document, so 10k would take ~3 min to fill"
        )
        store.close()
    finally:
        mongo.stop()
    return out
