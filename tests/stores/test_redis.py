"""What only the Redis store promises, against real ``redis-server`` processes.

Its URLs and their errors (the password never shown), key prefixes that keep
stores apart, its key layout and hash tags, one round trip per node for a
lookup, SCAN (never KEYS) for purge and listing, healing after a restart,
and clear, fast failures: wrong password, a cluster URL at a lone Redis, an
unreachable or hung server. The contract itself is ``test_contract.py``
(``--store=redis``, ``--store=redis-cluster``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("redis", reason="the Redis store needs redis-py: pip install 'skyhooks[redis]'")

from skyhooks import ConfigurationError, StoreError, Subscription, Topic, open_store
from skyhooks.core.stores.redis import RedisStore
from tests.support.redis import RedisCluster, RedisServer, free_port, make_certificate

pytestmark = pytest.mark.redis

URL1 = "http://127.0.0.1:8001/skyhooks"
URL2 = "http://127.0.0.1:8002/skyhooks"
A42 = Topic("account_id", "42")
SECRET = "s3cret@Pa55/x"  # characters a URL must percent-encode
QUOTED = quote(SECRET, safe="")


def _selected(config: pytest.Config, name: str) -> bool:
    names = config.getoption("--store")
    return not names or name in names


@pytest.fixture(params=["redis", "redis-cluster"])
def kind(request) -> str:
    """Both deployments, each only in its own store session."""
    if not _selected(request.config, request.param):
        pytest.skip(f"runs in the {request.param} store session")
    return request.param


@pytest.fixture
def only_redis(request) -> None:
    if not _selected(request.config, "redis"):
        pytest.skip("runs in the redis store session")


@pytest.fixture
def only_cluster(request) -> None:
    if not _selected(request.config, "redis-cluster"):
        pytest.skip("runs in the redis-cluster store session")


@pytest.fixture
def url(kind, request) -> str:
    return request.getfixturevalue("redis_url" if kind == "redis" else "redis_cluster_url")


@pytest.fixture
def servers(kind, request) -> list[RedisServer]:
    """The redis-server processes behind ``url``: one, or the cluster's nodes."""
    if kind == "redis":
        return [request.getfixturevalue("redis_session_server")]
    return list(request.getfixturevalue("redis_session_cluster").nodes)


@pytest.fixture
def store(url, clock) -> Iterator[RedisStore]:
    made = RedisStore(url, clock=clock)
    yield made
    made.close()


def raw(server: RedisServer, *words: str) -> str:
    """One command through redis-cli, as text (not through the store under test)."""
    done = subprocess.run(
        ["redis-cli", "-p", str(server.port), *words], capture_output=True, text=True, timeout=10
    )
    return done.stdout.strip()


def node_of(store: RedisStore, servers: list[RedisServer], key: str) -> RedisServer:
    if not store.cluster:
        return servers[0]
    port = store.client.get_node_from_key(key).port
    return next(server for server in servers if server.port == port)


# -- URLs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown", "cluster", "prefix"),
    [
        ("redis://127.0.0.1:6380/2", "redis://127.0.0.1:6380/2", False, "skyhooks"),
        ("redis://example.org", "redis://example.org:6379", False, "skyhooks"),
        ("rediss://:pw@example.org:6390/0", "rediss://:***@example.org:6390/0", False, "skyhooks"),
        (
            "redis://app:pw@[::1]:7000/1?prefix=app.v2",
            "redis://app:***@[::1]:7000/1?prefix=app.v2",
            False,
            "app.v2",
        ),
        ("redis+cluster://10.0.0.9:7000", "redis+cluster://10.0.0.9:7000", True, "skyhooks"),
        (
            "rediss+cluster://u:pw@10.0.0.9:7000/?socket_timeout=2",
            "rediss+cluster://u:***@10.0.0.9:7000/",
            True,
            "skyhooks",
        ),
        ("redis://h/?socket_connect_timeout=0.5&socket_timeout=1", "redis://h:6379/", False, "skyhooks"),
        ("rediss://h/0?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem", "rediss://h:6379/0", False, "skyhooks"),
    ],
)
def test_url_forms(only_redis, url, shown, cluster, prefix):
    store = open_store(url)  # nothing connects yet: these hosts need not exist
    try:
        assert isinstance(store, RedisStore)
        assert (store.url, store.cluster, store.prefix) == (shown, cluster, prefix)
        assert "pw" not in repr(store)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://:pw@127.0.0.1:6379/abc", "the database must be a number"),
        ("redis://:pw@127.0.0.1:6379/-1", "the database must be a number"),
        ("redis://:pw@127.0.0.1:6379/0/1", "the database must be a number"),
        ("redis+cluster://:pw@127.0.0.1:7000/3", "only database 0"),
        ("redis://:pw@127.0.0.1:6379/0?password=pw&db=2", "unknown option(s) db, password"),
        ("redis://:pw@127.0.0.1:6379/0?ssl_ca_certs=/ca.pem", "unknown option(s) ssl_ca_certs"),
        ("redis://:pw@127.0.0.1:6379/0?prefix=a{b}", "prefix 'a{b}' must be"),
        ("redis://:pw@127.0.0.1:6379/0?prefix=", "prefix '' must be"),
        ("redis://:pw@127.0.0.1:6379/0?socket_timeout=soon", "socket_timeout is a number of seconds"),
        ("redis://:pw@127.0.0.1:6379/0?socket_connect_timeout=0", "socket_connect_timeout is a number"),
        ("rediss://:pw@127.0.0.1:6379/0?ssl_cert_reqs=maybe", "ssl_cert_reqs is one of none"),
        ("redis://:pw@127.0.0.1:port/0", "malformed"),
    ],
)
def test_bad_urls_are_configuration_errors_without_the_password(only_redis, url, says):
    with pytest.raises(ConfigurationError) as info:
        open_store(url)
    message = str(info.value)
    assert says in message
    assert ":pw@" not in message and "=pw" not in message
    assert "\n" not in message


def test_prefix_argument_overrides_and_is_checked(only_redis):
    store = RedisStore("redis://h/0?prefix=a", prefix="b")
    assert (store.prefix, store.url) == ("b", "redis://h:6379/0?prefix=b")
    with pytest.raises(ConfigurationError, match="must be 1-64 letters"):
        RedisStore("redis://h/0", prefix="no spaces")


# -- keys -----------------------------------------------------------------------


def test_key_layout_and_hash_tags(store, servers):
    odd = Topic("room", "{lobby}%7B")  # braces and a percent sign in a value
    store.add(URL1, {A42, odd}, ttl=60)
    p = store.prefix
    assert store.topic_key(A42) == f"{p}:t:{{account_id=42}}"
    assert store.topic_key(odd) == f"{p}:t:{{room=%7Blobby%7D%257B}}"
    assert store.url_key(URL1) == f"{p}:u:{{{URL1}}}"
    for key in (store.topic_key(A42), store.topic_key(odd), store.url_key(URL1)):
        server = node_of(store, servers, key)
        assert raw(server, "TYPE", key) == "zset"
        if store.cluster:  # the slot is the hash of our own tag, never of a brace in the value
            tag = key[key.index("{") + 1 : key.rindex("}")]
            assert raw(server, "CLUSTER", "KEYSLOT", key) == raw(server, "CLUSTER", "KEYSLOT", tag)
    server = node_of(store, servers, store.topic_key(odd))
    assert raw(server, "ZRANGE", store.topic_key(odd), "0", "-1") == URL1
    assert store.lookup({odd}) == {URL1: frozenset({odd})}
    assert [s.topic for s in store.subscriptions() if s.topic.name == "room"] == [odd]


def test_keys_expire_with_their_longest_lived_member(store, servers):
    store.add(URL1, {A42}, ttl=100)
    store.add(URL2, {A42}, ttl=10)  # a shorter subscription must not shorten URL1's key
    topic_server = node_of(store, servers, store.topic_key(A42))
    kept = int(raw(topic_server, "PTTL", store.topic_key(A42)))
    assert 95_000 < kept <= 101_000
    url2_server = node_of(store, servers, store.url_key(URL2))
    assert 5_000 < int(raw(url2_server, "PTTL", store.url_key(URL2))) <= 11_000


def test_prefixes_keep_stores_apart(kind, url, clock):
    base = url.split("?", 1)[0]
    prefix = url.split("prefix=", 1)[1]
    first = RedisStore(base, prefix=prefix, clock=clock)
    # "P:t" as a prefix makes keys that start with "P:t:" too: SCAN must not mix them
    second = RedisStore(base, prefix=f"{prefix}:t", clock=clock)
    try:
        first.add(URL1, {A42}, ttl=10)
        second.add(URL2, {A42}, ttl=10)
        assert first.lookup({A42}) == {URL1: frozenset({A42})}
        assert second.lookup({A42}) == {URL2: frozenset({A42})}
        assert [s.url for s in first.subscriptions()] == [URL1]
        assert [s.url for s in second.subscriptions()] == [URL2]
        assert first.remove_url(URL2) == 0
        clock.advance(11)
        assert first.purge() == 1
        clock.advance(-11)
        assert second.lookup({A42}) == {URL2: frozenset({A42})}
    finally:
        first.close()
        second.close()


# -- round trips ----------------------------------------------------------------


class ReadCounter:
    """Counts the reads each server makes from its clients (``total_reads_processed``):
    a pipelined batch is one read, so a lookup's reads are its round trips. Each
    INFO this asks costs reads of its own, subtracted by a calibration."""

    def __init__(self, servers: list[RedisServer]) -> None:
        self.servers = servers
        before = self.reads()
        self.overhead = [after - b for b, after in zip(before, self.reads(), strict=True)]

    def reads(self) -> list[int]:
        return [int(server.info("stats")["total_reads_processed"]) for server in self.servers]

    def during(self, action: Any) -> dict[int, int]:
        before = self.reads()
        action()
        after = self.reads()
        return {
            server.port: a - b - o
            for server, b, a, o in zip(self.servers, before, after, self.overhead, strict=True)
        }


def test_a_lookup_is_one_round_trip_per_node(store, servers):
    topics = {Topic("account_id", str(i)) for i in range(40)}
    store.add(URL1, topics, ttl=60)
    store.lookup(topics)  # connections made and handshakes done before counting
    holders: dict[int, int] = {}
    for topic in topics:
        port = node_of(store, servers, store.topic_key(topic)).port
        holders[port] = holders.get(port, 0) + 1
    if store.cluster:
        assert len(holders) == 3, "forty topics should spread over all three nodes"
    counter = ReadCounter(servers)
    calls_before = [_calls(server, "zrangebyscore") for server in servers]
    found: dict[str, Any] = {}
    reads = counter.during(lambda: found.update(store.lookup(topics)))
    assert found == {URL1: frozenset(topics)}
    assert reads == {server.port: 1 if server.port in holders else 0 for server in servers}
    calls = [_calls(server, "zrangebyscore") - b for server, b in zip(servers, calls_before, strict=True)]
    assert calls == [holders.get(server.port, 0) for server in servers]
    # and a one-key message, the usual case, is one round trip to one node
    one = next(iter(topics))
    reads = counter.during(lambda: store.lookup({one}))
    assert sum(reads.values()) == 1


def _calls(server: RedisServer, command: str) -> int:
    stats = server.info("commandstats").get(f"cmdstat_{command}")
    return int(stats.split(",")[0].split("=")[1]) if stats else 0


def test_cross_slot_writes_in_a_cluster(only_cluster, redis_cluster_url, redis_session_cluster, clock):
    store = RedisStore(redis_cluster_url, clock=clock)
    try:
        topics = [Topic("account_id", str(i)) for i in range(30)]
        nodes = {store.client.get_node_from_key(store.topic_key(t)).port for t in topics}
        assert len(nodes) == 3
        store.add(URL1, topics, ttl=10)
        store.add(URL2, topics[:10], ttl=10)
        clock.advance(5)
        store.renew(URL1, topics[10:], ttl=10)  # drops ten topics spread over the nodes
        store.remove(URL2, topics[:5])
        clock.advance(6)  # URL2's last five have expired; URL1's were renewed
        assert store.lookup(topics) == {URL1: frozenset(topics[10:])}
        assert store.remove_url(URL1) == 20
        assert store.lookup(topics) == {}
    finally:
        store.close()


# -- SCAN -----------------------------------------------------------------------


def test_purge_and_listing_walk_thousands_of_keys_with_scan(store, servers, clock):
    short = [Topic("account_id", str(i)) for i in range(1500)]
    long = [Topic("user_id", str(i)) for i in range(1500)]
    urls = [f"http://127.0.0.1:{9000 + i}/h" for i in range(3)]
    for index, url in enumerate(urls):
        store.add(url, short[index::3], ttl=10)
        store.add(url, long[index::3], ttl=100)
    keys_before = sum(_calls(server, "keys") for server in servers)
    scans_before = sum(_calls(server, "scan") for server in servers)
    assert len(store.subscriptions()) == 3000
    clock.advance(50)
    assert store.purge() == 1500
    assert store.purge() == 0
    rows = store.subscriptions()
    assert len(rows) == 1500 and {row.topic.name for row in rows} == {"user_id"}
    assert rows == sorted(rows, key=lambda row: (row.url, row.topic))
    # purged sorted sets are gone, the URLs' keys hold only what is left
    gone = store.topic_key(short[0])
    assert raw(node_of(store, servers, gone), "EXISTS", gone) == "0"
    index = store.url_key(urls[0])
    assert raw(node_of(store, servers, index), "ZCARD", index) == "500"
    assert sum(_calls(server, "keys") for server in servers) == keys_before == 0
    assert sum(_calls(server, "scan") for server in servers) > scans_before


def test_purge_forgets_a_url_whose_topics_all_expired(store, servers, clock):
    store.add(URL1, {A42}, ttl=10)
    clock.advance(11)
    assert store.purge() == 1
    index = store.url_key(URL1)
    assert raw(node_of(store, servers, index), "EXISTS", index) == "0"
    assert store.remove_url(URL1) == 0


def test_subscriptions_rows(store, clock):
    store.add(URL1, {A42}, ttl=10)
    assert store.subscriptions({A42, Topic("user_id", "1")}) == [
        Subscription(A42, URL1, pytest.approx(clock.now + 10, abs=1e-3))
    ]


def test_a_forked_child_opens_its_own_connections(store):
    """Celery's prefork pool forks after the parent used the store: the child must
    never read replies meant for its parent, on the same socket."""
    store.add(URL1, {A42}, ttl=60)
    assert store.lookup({A42}) == {URL1: frozenset({A42})}  # the parent's connections are open
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if everything it read was right
        code = 1
        try:
            store.add(URL2, {A42}, ttl=60)
            ok = all(
                store.lookup({A42}) == {URL1: frozenset({A42}), URL2: frozenset({A42})} for _ in range(50)
            )
            code = 0 if ok else 1
        finally:
            os._exit(code)
    for _ in range(50):
        assert store.lookup({A42}).keys() <= {URL1, URL2}
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.lookup({A42}) == {URL1: frozenset({A42}), URL2: frozenset({A42})}


# -- failures -----------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path, request) -> Iterator[RedisServer]:
    """A redis-server of this test's own (to restart, or with a password)."""
    options = getattr(request, "param", ())
    server = RedisServer(tmp_path, extra_args=options).start()
    yield server
    server.stop()


def test_restarted_empty_heals_at_renewal(only_redis, own_redis, clock):
    store = RedisStore(own_redis.url(), clock=clock)
    try:
        store.add(URL1, {A42}, ttl=30)
        store.add(URL2, {A42}, ttl=30)
        own_redis.restart(empty=True)
        assert store.lookup({A42}) == {}  # the pooled connections were dead: reconnected at once
        store.renew(URL1, {A42}, ttl=30)
        assert store.lookup({A42}) == {URL1: frozenset({A42})}
    finally:
        store.close()


def test_restart_keeping_data(only_redis, own_redis):
    store = open_store(own_redis.url())
    try:
        store.add(URL1, {A42}, ttl=30)
        own_redis.restart(empty=False)
        assert store.lookup({A42}) == {URL1: frozenset({A42})}
    finally:
        store.close()


@pytest.mark.parametrize("own_redis", [("--requirepass", SECRET)], indirect=True)
def test_passwords(only_redis, own_redis):
    good = open_store(f"redis://:{QUOTED}@127.0.0.1:{own_redis.port}/0")
    good.add(URL1, {A42}, ttl=30)
    assert good.lookup({A42}) == {URL1: frozenset({A42})}
    good.close()
    for url in (f"redis://:not-{QUOTED}@127.0.0.1:{own_redis.port}/0", own_redis.url()):
        store = open_store(url)
        with pytest.raises(StoreError) as info:
            store.lookup({A42})
        message = str(info.value)
        assert "check the user and password in the store URL" in message
        assert SECRET not in message and QUOTED not in message and "\n" not in message
        assert f"127.0.0.1:{own_redis.port}" in message
        store.close()


def test_cluster_url_at_a_lone_redis(only_redis, redis_session_server):
    store = open_store(f"redis+cluster://127.0.0.1:{redis_session_server.port}")
    with pytest.raises(StoreError) as info:
        store.subscriptions()
    message = str(info.value)
    assert "not a Redis Cluster node: use redis:// for a single Redis" in message
    assert "\n" not in message
    store.close()


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
def test_unreachable_fails_fast(only_redis, scheme):
    port = free_port()  # nobody listens there
    store = open_store(f"{scheme}://:{QUOTED}@127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        store.lookup({A42})
    assert time.monotonic() - started < 3
    assert f"127.0.0.1:{port}" in str(info.value) and QUOTED not in str(info.value)
    assert info.value.__cause__ is not None
    store.close()


@pytest.fixture
def hung_server() -> Iterator[int]:
    """A port that accepts connections and never answers: a Redis that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_hung_server_times_out(only_redis, hung_server):
    store = open_store(f"redis://127.0.0.1:{hung_server}/0?socket_timeout=0.3")
    started = time.monotonic()
    with pytest.raises(StoreError, match="Timeout"):
        store.lookup({A42})
    assert time.monotonic() - started < 2  # once, not retried
    store.close()


# -- TLS ------------------------------------------------------------------------


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, int, Path]]:
    cert, key = make_certificate(tmp_path)
    tls_port = free_port()
    server = RedisServer(
        tmp_path,
        extra_args=[
            "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
        ],
    ).start()  # fmt: skip
    yield server, tls_port, cert
    server.stop()


def test_rediss(only_redis, tls_redis):
    _, port, cert = tls_redis
    store = open_store(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}")
    store.add(URL1, {A42}, ttl=30)
    assert store.lookup({A42}) == {URL1: frozenset({A42})}
    store.close()
    unverified = open_store(f"rediss://127.0.0.1:{port}/0")  # the system CAs do not know this cert
    with pytest.raises(StoreError, match="certificate verify failed"):
        unverified.lookup({A42})
    unverified.close()


def test_rediss_cluster(only_cluster, tmp_path):
    cluster = RedisCluster(tmp_path, tls=make_certificate(tmp_path)).start()
    try:
        store = open_store(cluster.tls_url(1))
        topics = {Topic("account_id", str(i)) for i in range(20)}
        store.add(URL1, topics, ttl=30)
        assert store.lookup(topics) == {URL1: frozenset(topics)}
        assert {node.port for node in store.client.get_nodes()} == {n.tls_port for n in cluster.nodes}
        store.close()
    finally:
        cluster.stop()
