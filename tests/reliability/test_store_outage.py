"""The store goes away under running instances: SQLite locked or removed, MongoDB killed.

Instances must keep dispatching locally with their loops free, publishers must
say clearly what happened, and renewals must restore every topic afterwards.
Instances run with ttl=3, so they renew every second.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from skyhooks import Publisher, RetryPolicy, StoreError
from skyhooks.core.keys import topics_of
from skyhooks.core.stores import open_store
from tests.support.instances import wait_for
from tests.support.mongo import MongoServer, external_uri, fresh_database, mongoeco_python

from .conftest import FRAMEWORKS

TTL = 3.0
STABLE = {"account_id": 42}
POLICY = RetryPolicy(attempts=2, backoff=0.05, deadline=3.0, timeout=2.0)
LAG_BOUND_MS = 1000.0  # generous: two shared cores; a blocked loop shows seconds


def start_three(launch, store_url):
    instances = [launch(fw, store_url, ttl=TTL) for fw in FRAMEWORKS]
    for instance in instances:
        instance.register(STABLE, "s")
    return instances


def urls_for(store_url: str, keys) -> set[str]:
    store = open_store(store_url)
    try:
        return set(store.lookup(topics_of(keys)))
    finally:
        store.close()


def during_outage(instances, seconds: float):
    """What instances do while the store is unusable: register new topics without
    waiting, dispatch directly sent messages, keep their loops free."""
    for instance in instances:
        instance.control("reset")
        instance.register({"late": instance.framework}, "late", wait=False)
    deadline = time.monotonic() + seconds
    direct = 0
    while time.monotonic() < deadline:
        for instance in instances:
            status, reply = instance.send({"late": instance.framework}, {"direct": direct})
            assert (status, reply["notified"]) == (200, 1), (instance.framework, status, reply)
            direct += 1
        time.sleep(0.2)
    lags = {i.framework: i.lag()["max_lag_ms"] for i in instances}
    for instance in instances:
        assert len(instance.received()["late"]) == direct // len(instances)
    assert max(lags.values()) < LAG_BOUND_MS, f"an event loop was blocked during the outage: {lags}"
    return lags, direct


def wait_healed(instances, store_url: str, timeout: float) -> float:
    started = time.monotonic()
    want = {i.url for i in instances}

    def healed() -> bool:
        try:
            return urls_for(store_url, STABLE) == want and all(
                urls_for(store_url, {"late": i.framework}) == {i.url} for i in instances
            )
        except StoreError:
            return False

    wait_for(healed, timeout=timeout, interval=0.2, what="every topic back in the store")
    return time.monotonic() - started


def deliver_everywhere(store_url, secret, instances):
    with Publisher(store_url, secret, retry=POLICY) as publisher:
        for instance in instances:
            report = publisher.notify({"late": instance.framework}, {"after": True})
            assert report.delivered == {instance.url}, report
        report = publisher.notify(STABLE, {"after": True})
        assert report.delivered == {i.url for i in instances}, report


def test_sqlite_locked_exclusive(launch, tmp_path, secret, measure):
    path = tmp_path / "hooks.db"
    store_url = f"sqlite:///{path}"
    instances = start_three(launch, store_url)
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    locked_at = time.monotonic()
    try:
        # WAL readers are not blocked by a writer, so publishers still read the store;
        # a store write (pruning) waits busy_timeout and fails as StoreError, logged.
        with Publisher(open_store(store_url), secret, retry=POLICY) as publisher:
            report = publisher.notify(STABLE, {"locked": True})
            assert report.delivered == {i.url for i in instances}, report
        lags, direct = during_outage(instances, seconds=2 * TTL / 3 + 2)
        # Nothing could be written meanwhile: the new topics are only local.
        assert all(not urls_for(store_url, {"late": fw}) for fw in FRAMEWORKS)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    locked_for = time.monotonic() - locked_at
    heal = wait_healed(instances, store_url, timeout=30)
    deliver_everywhere(store_url, secret, instances)
    measure(
        store="sqlite-locked",
        locked_s=round(locked_for, 2),
        direct_messages_dispatched=direct,
        max_loop_lag_ms=lags,
        heal_after_unlock_s=round(heal, 2),
        topics_lost=0,
    )


def test_sqlite_file_removed_and_recreated(launch, tmp_path, secret, measure):
    path = tmp_path / "hooks.db"
    store_url = f"sqlite:///{path}"
    instances = start_three(launch, store_url)
    assert urls_for(store_url, STABLE) == {i.url for i in instances}
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    removed_at = time.monotonic()
    assert urls_for(store_url, STABLE) == set()  # recreated, empty
    with Publisher(store_url, secret, retry=POLICY) as publisher:
        report = publisher.notify(STABLE, {"gone": True})
    assert report.urls == frozenset() and report.notified == 0
    lags, direct = during_outage(instances, seconds=1.0)
    try:
        heal = wait_healed(instances, store_url, timeout=2 * TTL)
    finally:
        measure(
            store="sqlite-removed",
            healed=urls_for(store_url, STABLE) == {i.url for i in instances},
            waited_s=round(time.monotonic() - removed_at, 2),
            max_loop_lag_ms=lags,
            direct_messages_dispatched=direct,
        )
    deliver_everywhere(store_url, secret, instances)
    measure(store="sqlite-removed", heal_after_removal_s=round(heal, 2))


@pytest.fixture
def own_mongo():
    """A MongoDB-wire server of this test's own, to kill and restart empty."""
    if external_uri("x"):
        pytest.skip("SKYHOOKS_MONGODB_URI names an external server, which this test cannot kill")
    python = mongoeco_python()
    if python is None:
        pytest.skip("no MongoDB-wire server (set SKYHOOKS_MONGOECO_PYTHON or run through scripts/test)")
    server = MongoServer(python)
    server.start()
    yield server
    server.stop()


@pytest.mark.mongodb
def test_mongodb_killed_and_restarted_empty(own_mongo, launch, secret, measure):
    store_url = own_mongo.url(fresh_database())
    instances = start_three(launch, store_url)
    assert urls_for(store_url, STABLE) == {i.url for i in instances}
    with Publisher(store_url, secret, retry=POLICY) as publisher:
        assert publisher.notify(STABLE, {"before": True}).notified == 3
        own_mongo.process.kill()  # SIGKILL: no goodbye to the clients
        own_mongo.process.wait()
        own_mongo.process = None
        down_at = time.monotonic()
        started = time.monotonic()
        with pytest.raises(StoreError) as error:
            publisher.notify(STABLE, {"down": True})
        store_error_s = time.monotonic() - started
        assert store_error_s < 15, "notify took too long to report the store outage"
        lags, direct = during_outage(instances, seconds=2 * TTL / 3 + 2)
        own_mongo.start()  # same port, empty
        restarted = time.monotonic()
        heal = wait_healed(instances, store_url, timeout=30)
    deliver_everywhere(store_url, secret, instances)
    measure(
        store="mongodb-restarted-empty",
        notify_error=str(error.value)[:120],
        notify_error_after_s=round(store_error_s, 2),
        down_s=round(restarted - down_at, 2),
        direct_messages_dispatched=direct,
        max_loop_lag_ms=lags,
        heal_after_restart_s=round(heal, 2),
        topics_lost=0,
    )
