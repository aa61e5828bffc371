"""Three instances (Tornado, gevent, Twisted), each its own process, and the
blocking ``skyhooks.Publisher`` in this one, over a shared store: the SQLite
file and the MongoDB-wire server alike.

Fan-out reaches exactly the instances and callbacks listening for a message's
keys; an instance killed with SIGKILL is reported failed and pruned; one
stopped with SIGTERM leaves the store; one that crashed ages out by its TTL
with no publisher's help, while the live ones keep renewing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from skyhooks import Publisher, RetryPolicy, Topic, open_store
from tests.integration.conftest import FRAMEWORKS
from tests.support.instances import wait_for

pytestmark = pytest.mark.slow

FAST_RETRY = RetryPolicy(attempts=2, backoff=0.05, deadline=5.0, timeout=3.0)


@pytest.fixture(params=["sqlite", pytest.param("mongodb", marks=pytest.mark.mongodb)])
def store_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Any]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def publisher(store_url: str, secret: str) -> Iterator[Publisher]:
    with Publisher(store=store_url, secret=secret, retry=FAST_RETRY) as opened:
        yield opened


def counts(received: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    return {name: len(messages) for name, messages in received.items() if messages}


def listed_urls(store: Any, keys: dict[str, Any]) -> set[str]:
    return set(store.lookup([Topic(name, str(value)) for name, value in keys.items()]))


def test_fan_out_reaches_exactly_the_listeners(
    store_url: str, store: Any, publisher: Publisher, start_instance: Any
) -> None:
    tornado, gevent, twisted = (start_instance(fw, store_url) for fw in FRAMEWORKS)
    tornado.register({"account_id": 42}, "a")
    tornado.register({"account_id": 42}, "b")
    tornado.register({"user_id": 5}, "a")  # "a" now listens under two topics
    gevent.register({"account_id": 42}, "a")
    gevent.register({"account_id": 7}, "seven")
    twisted.register({"account_id": 7}, "seven")
    twisted.register({"user_id": 5}, "user")

    report = publisher.notify({"account_id": 42}, {"n": 1})
    assert set(report.urls) == set(report.delivered) == {tornado.url, gevent.url}
    assert report.failed == {} and set(report.pruned) == set()
    assert report.notified == 3
    assert counts(tornado.received()) == {"a": 1, "b": 1}
    assert counts(gevent.received()) == {"a": 1}
    assert counts(twisted.received()) == {}

    # Matches all three instances; Tornado's "a" matches through user_id only,
    # Twisted matches through two topics with two callbacks: one POST each.
    report = publisher.notify({"account_id": 7, "user_id": 5}, {"n": 2})
    assert set(report.urls) == set(report.delivered) == {tornado.url, gevent.url, twisted.url}
    assert report.notified == 4
    assert counts(tornado.received()) == {"a": 2, "b": 1}
    assert counts(gevent.received()) == {"a": 1, "seven": 1}
    assert counts(twisted.received()) == {"seven": 1, "user": 1}
    for instance in (tornado, gevent, twisted):
        for name, messages in instance.received().items():
            ids = [m["id"] for m in messages]
            assert len(ids) == len(set(ids)), (instance.framework, name, messages)
    assert [m["data"] for m in twisted.received()["user"]] == [{"n": 2}]
    assert twisted.received()["user"][0]["keys"] == {"account_id": 7, "user_id": 5}

    report = publisher.notify({"account_id": 999}, {"n": 3})
    assert not report.urls and not report.delivered and not report.failed
    assert report.notified == 0
    assert sum(counts(tornado.received()).values()) == 3


def test_killed_instance_is_reported_failed_and_pruned(
    store_url: str, store: Any, publisher: Publisher, start_instance: Any
) -> None:
    instances = [start_instance(fw, store_url) for fw in FRAMEWORKS]
    for instance in instances:
        instance.register({"account_id": 42}, "cb")
    tornado, gevent, twisted = instances
    assert listed_urls(store, {"account_id": 42}) == {i.url for i in instances}

    twisted.kill()  # SIGKILL: no chance to unregister
    assert twisted.process is not None and twisted.process.returncode == -9
    assert twisted.url in listed_urls(store, {"account_id": 42})

    report = publisher.notify({"account_id": 42}, {"after": "kill"})
    assert set(report.urls) == {i.url for i in instances}
    assert set(report.delivered) == {tornado.url, gevent.url}
    assert set(report.failed) == {twisted.url}
    assert set(report.pruned) == {twisted.url}
    assert report.notified == 2
    assert listed_urls(store, {"account_id": 42}) == {tornado.url, gevent.url}
    assert twisted.url not in {sub.url for sub in store.subscriptions()}

    report = publisher.notify({"account_id": 42}, {"after": "prune"})
    assert set(report.urls) == set(report.delivered) == {tornado.url, gevent.url}
    assert report.failed == {}
    for instance in (tornado, gevent):
        assert [m["data"] for m in instance.received()["cb"]] == [{"after": "kill"}, {"after": "prune"}]


def test_stopped_instance_leaves_the_store(
    store_url: str, store: Any, publisher: Publisher, start_instance: Any
) -> None:
    instances = [start_instance(fw, store_url) for fw in FRAMEWORKS]
    for instance in instances:
        instance.register({"account_id": 42}, "cb")
        instance.register({"account_id": 7}, "cb")
    tornado, gevent, twisted = instances

    assert gevent.terminate() == 0  # SIGTERM: registry.stop(), then exit
    assert gevent.url not in {sub.url for sub in store.subscriptions()}
    assert {sub.url for sub in store.subscriptions()} == {tornado.url, twisted.url}

    report = publisher.notify({"account_id": 42}, {"x": 1})
    assert set(report.urls) == set(report.delivered) == {tornado.url, twisted.url}
    assert report.failed == {} and not report.pruned
    assert report.notified == 2


def test_crashed_instance_ages_out_by_ttl(store_url: str, store: Any, start_instance: Any) -> None:
    ttl = 2.0
    instances = [start_instance(fw, store_url, ttl=ttl) for fw in FRAMEWORKS]
    for instance in instances:
        instance.register({"account_id": 42}, "cb")
    tornado, gevent, twisted = instances
    keys = {"account_id": 42}

    gevent.kill()  # a crash: SIGKILL, nothing removed
    killed = time.monotonic()
    assert listed_urls(store, keys) == {i.url for i in instances}

    wait_for(
        lambda: gevent.url not in listed_urls(store, keys), timeout=ttl + 5, what="the crashed URL to expire"
    )
    gone_after = time.monotonic() - killed
    # Renewed every ttl/3, so its last expiry was at least 2/3 ttl after the kill's
    # previous renewal; vanishing much sooner would mean something removed it.
    assert gone_after > ttl / 3, gone_after
    assert gevent.url not in {sub.url for sub in store.subscriptions()}

    # Past a whole TTL after the crash, the live ones are still listed: they renew.
    time.sleep(max(0.0, ttl + 0.5 - (time.monotonic() - killed)))
    assert listed_urls(store, keys) == {tornado.url, twisted.url}
