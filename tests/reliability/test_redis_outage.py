"""Redis goes away under running instances: one Redis killed and restarted empty,
and one node of a Redis Cluster killed and brought back.

The promises are those of ``test_store_outage.py`` (instances keep their local
callbacks and their loops free, publishers get ``StoreError`` and send nothing,
renewals restore every topic), plus the cluster's own: while a node is down,
messages whose keys live on the other nodes are still delivered, because the
instances keep renewing what the live nodes hold, and only messages with a key
on the dead node fail, as ``StoreError``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from skyhooks import Publisher, StoreError, Topic
from skyhooks.core.stores import open_store
from tests.support.instances import wait_for
from tests.support.redis import RedisCluster, RedisServer, have_redis

from .conftest import FRAMEWORKS
from .test_store_outage import (
    POLICY,
    STABLE,
    TTL,
    deliver_everywhere,
    during_outage,
    start_three,
    urls_for,
    wait_healed,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill and restart empty."""
    if not have_redis():
        pytest.fail("redis-server and redis-cli are not installed: run scripts/setup-system")
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def own_cluster(tmp_path) -> Iterator[RedisCluster]:
    """A three-node Redis Cluster of this test's own, to kill a node of."""
    if not have_redis():
        pytest.fail("redis-server and redis-cli are not installed: run scripts/setup-system")
    cluster = RedisCluster(tmp_path).start()
    yield cluster
    cluster.stop()


def test_redis_killed_and_restarted_empty(own_redis, launch, secret, measure):
    store_url = own_redis.url()
    instances = start_three(launch, store_url)
    assert urls_for(store_url, STABLE) == {i.url for i in instances}
    with Publisher(store_url, secret, retry=POLICY) as publisher:
        assert publisher.notify(STABLE, {"before": True}).notified == 3
        own_redis.kill()  # SIGKILL: no goodbye to the clients
        down_at = time.monotonic()
        with pytest.raises(StoreError) as error:
            publisher.notify(STABLE, {"down": True})
        store_error_s = time.monotonic() - down_at
        assert store_error_s < 5, "notify took too long to report the store outage"
        assert str(own_redis.port) in str(error.value)
        lags, direct = during_outage(instances, seconds=2 * TTL / 3 + 2)
        own_redis.restart(empty=True)  # same port, nothing in it
        restarted = time.monotonic()
        heal = wait_healed(instances, store_url, timeout=30)
    deliver_everywhere(store_url, secret, instances)
    measure(
        store="redis-restarted-empty",
        notify_error=str(error.value)[:120],
        notify_error_after_s=round(store_error_s, 2),
        down_s=round(restarted - down_at, 2),
        direct_messages_dispatched=direct,
        max_loop_lag_ms=lags,
        heal_after_restart_s=round(heal, 2),
        topics_lost=0,
    )


def _accounts_by_node(store_url: str, cluster: RedisCluster) -> dict[int, list[int]]:
    """Account ids 0-199, grouped by the index of the node holding their topic's key."""
    store = open_store(store_url)
    try:
        by_node: dict[int, list[int]] = {}
        for account in range(200):
            key = store.topic_key(Topic("account_id", str(account)))
            port = store.client.get_node_from_key(key).port
            by_node.setdefault(cluster.ports.index(port), []).append(account)
        return by_node
    finally:
        store.close()


def test_cluster_node_killed_and_brought_back(own_cluster, launch, secret, measure):
    store_url = own_cluster.url()
    by_node = _accounts_by_node(store_url, own_cluster)
    dead_node = 1
    doomed = {"account_id": by_node[dead_node][0]}  # its key is on the node that dies
    alive = [{"account_id": by_node[node][0]} for node in (0, 2)]  # theirs on the others
    instances = [launch(fw, store_url, ttl=TTL) for fw in FRAMEWORKS]
    everyone = {i.url for i in instances}
    for instance in instances:
        for keys in (doomed, *alive):
            instance.register(keys, "cb")
    with Publisher(store_url, secret, retry=POLICY) as publisher:
        for keys in (doomed, *alive):
            assert publisher.notify(keys, {"before": True}).delivered == everyone
        own_cluster.kill(dead_node)
        down_at = time.monotonic()
        delivered = failed = 0
        error_after: list[float] = []
        # Past two TTLs: only renewals that kept going on the live nodes keep
        # the instances listed there by now.
        while time.monotonic() - down_at < 2 * TTL + 1:
            for keys in alive:
                report = publisher.notify(keys, {"during": True})
                assert report.delivered == everyone, (time.monotonic() - down_at, report)
                delivered += 1
            started = time.monotonic()
            with pytest.raises(StoreError) as error:
                publisher.notify(doomed, {"during": True})
            error_after.append(time.monotonic() - started)
            assert f"127.0.0.1:{own_cluster.ports[dead_node]}" in str(error.value)
            failed += 1
            time.sleep(0.2)
        down_s = time.monotonic() - down_at
        own_cluster.restart(dead_node)  # same port and node file: its slots, no data
        restarted = time.monotonic()

        def healed() -> bool:
            try:
                return urls_for(store_url, doomed) == everyone
            except StoreError:
                return False

        wait_for(healed, timeout=30, interval=0.2, what="the dead node's topic renewed again")
        heal = time.monotonic() - restarted
        for keys in (doomed, *alive):
            assert publisher.notify(keys, {"after": True}).delivered == everyone
    for instance in instances:
        received = len(instance.received()["cb"])
        assert received == 3 + delivered + 3, (instance.framework, received)
    measure(
        store="redis-cluster-node-killed",
        down_s=round(down_s, 2),
        delivered_via_live_nodes=delivered,
        failed_as_store_error=failed,
        store_error_max_s=round(max(error_after), 3),
        heal_after_restart_s=round(heal, 2),
    )
