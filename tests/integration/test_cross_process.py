"""Five instances (Tornado, gevent, Twisted, WebhookASGI under uvicorn, aiohttp), each
its own process, and the blocking ``skyhooks.Publisher`` in this one, over a shared
store: the SQLite file and the MongoDB-wire server alike.

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


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("mongodb", marks=pytest.mark.mongodb),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis_cluster", marks=pytest.mark.redis, id="redis-cluster"),
    ]
)
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
    tornado, gevent, twisted, asgi, aiohttp = (start_instance(fw, store_url) for fw in FRAMEWORKS)
    tornado.register({"account_id": 42}, "a")
    tornado.register({"account_id": 42}, "b")
    tornado.register({"user_id": 5}, "a")  # "a" now listens under two topics
    gevent.register({"account_id": 42}, "a")
    gevent.register({"account_id": 7}, "seven")
    twisted.register({"account_id": 7}, "seven")
    twisted.register({"user_id": 5}, "user")
    asgi.register({"account_id": 42}, "a")
    asgi.register({"account_id": 8}, "eight")
    aiohttp.register({"user_id": 5}, "user")
    aiohttp.register({"account_id": 8}, "eight")

    report = publisher.notify({"account_id": 42}, {"n": 1})
    assert set(report.urls) == set(report.delivered) == {tornado.url, gevent.url, asgi.url}
    assert report.failed == {} and set(report.pruned) == set()
    assert report.notified == 4
    assert counts(tornado.received()) == {"a": 1, "b": 1}
    assert counts(gevent.received()) == {"a": 1}
    assert counts(twisted.received()) == {}
    assert counts(asgi.received()) == {"a": 1}
    assert counts(aiohttp.received()) == {}

    # Matches four instances; Tornado's "a" matches through user_id only,
    # Twisted matches through two topics with two callbacks: one POST each.
    report = publisher.notify({"account_id": 7, "user_id": 5}, {"n": 2})
    assert set(report.urls) == set(report.delivered) == {tornado.url, gevent.url, twisted.url, aiohttp.url}
    assert report.notified == 5
    assert counts(tornado.received()) == {"a": 2, "b": 1}
    assert counts(gevent.received()) == {"a": 1, "seven": 1}
    assert counts(twisted.received()) == {"seven": 1, "user": 1}
    assert counts(asgi.received()) == {"a": 1}
    assert counts(aiohttp.received()) == {"user": 1}
    assert [m["data"] for m in aiohttp.received()["user"]] == [{"n": 2}]

    report = publisher.notify({"account_id": 8}, {"n": 3})  # the two new kinds alone
    assert set(report.urls) == set(report.delivered) == {asgi.url, aiohttp.url}
    assert report.notified == 2
    for instance in (tornado, gevent, twisted, asgi, aiohttp):
        for name, messages in instance.received().items():
            ids = [m["id"] for m in messages]
            assert len(ids) == len(set(ids)), (instance.framework, name, messages)
    assert [m["data"] for m in twisted.received()["user"]] == [{"n": 2}]
    assert twisted.received()["user"][0]["keys"] == {"account_id": 7, "user_id": 5}

    report = publisher.notify({"account_id": 999}, {"n": 4})
    assert not report.urls and not report.delivered and not report.failed
    assert report.notified == 0
    assert sum(counts(tornado.received()).values()) == 3


def test_killed_instance_is_reported_failed_and_pruned(
    store_url: str, store: Any, publisher: Publisher, start_instance: Any
) -> None:
    instances = {fw: start_instance(fw, store_url) for fw in FRAMEWORKS}
    for instance in instances.values():
        instance.register({"account_id": 42}, "cb")
    assert listed_urls(store, {"account_id": 42}) == {i.url for i in instances.values()}
    killed = {instances["twisted"].url, instances["asgi"].url}
    live = [i for i in instances.values() if i.url not in killed]

    for name in ("twisted", "asgi"):
        instances[name].kill()  # SIGKILL: no chance to unregister
        assert instances[name].process is not None and instances[name].process.returncode == -9
    assert killed <= listed_urls(store, {"account_id": 42})

    report = publisher.notify({"account_id": 42}, {"after": "kill"})
    assert set(report.urls) == {i.url for i in instances.values()}
    assert set(report.delivered) == {i.url for i in live}
    assert set(report.failed) == killed
    assert set(report.pruned) == killed
    assert report.notified == 3
    assert listed_urls(store, {"account_id": 42}) == {i.url for i in live}
    assert not killed & {sub.url for sub in store.subscriptions()}

    report = publisher.notify({"account_id": 42}, {"after": "prune"})
    assert set(report.urls) == set(report.delivered) == {i.url for i in live}
    assert report.failed == {}
    for instance in live:
        assert [m["data"] for m in instance.received()["cb"]] == [{"after": "kill"}, {"after": "prune"}]


def test_stopped_instance_leaves_the_store(
    store_url: str, store: Any, publisher: Publisher, start_instance: Any
) -> None:
    instances = [start_instance(fw, store_url) for fw in FRAMEWORKS]
    for instance in instances:
        instance.register({"account_id": 42}, "cb")
        instance.register({"account_id": 7}, "cb")
    tornado, gevent, twisted, asgi, aiohttp = instances

    assert gevent.terminate() == 0  # SIGTERM: registry.stop(), then exit
    assert asgi.terminate() == 0  # SIGTERM: uvicorn shuts down, its lifespan stops the registry
    assert {sub.url for sub in store.subscriptions()} == {tornado.url, twisted.url, aiohttp.url}

    report = publisher.notify({"account_id": 42}, {"x": 1})
    assert set(report.urls) == set(report.delivered) == {tornado.url, twisted.url, aiohttp.url}
    assert report.failed == {} and not report.pruned
    assert report.notified == 3


def test_crashed_instance_ages_out_by_ttl(store_url: str, store: Any, start_instance: Any) -> None:
    ttl = 2.0
    instances = [start_instance(fw, store_url, ttl=ttl) for fw in FRAMEWORKS]
    for instance in instances:
        instance.register({"account_id": 42}, "cb")
    tornado, gevent, twisted, asgi, aiohttp = instances
    keys = {"account_id": 42}

    gevent.kill()  # a crash: SIGKILL, nothing removed
    asgi.kill()
    killed = time.monotonic()
    crashed = {gevent.url, asgi.url}
    assert listed_urls(store, keys) == {i.url for i in instances}

    wait_for(
        lambda: not crashed & listed_urls(store, keys), timeout=ttl + 5, what="the crashed URLs to expire"
    )
    gone_after = time.monotonic() - killed
    # Renewed every ttl/3, so their last expiry was at least 2/3 ttl after the kill's
    # previous renewal; vanishing much sooner would mean something removed them.
    assert gone_after > ttl / 3, gone_after
    assert not crashed & {sub.url for sub in store.subscriptions()}

    # Past a whole TTL after the crash, the live ones are still listed: they renew.
    time.sleep(max(0.0, ttl + 0.5 - (time.monotonic() - killed)))
    assert listed_urls(store, keys) == {tornado.url, twisted.url, aiohttp.url}
