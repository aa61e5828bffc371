"""What every publisher promises, checked once for all four (blocking, Tornado, gevent,
Twisted) through an in-memory transport: no sockets, so each promise is about the
publisher's own logic and the core it shares. The real clients are tested against
real sockets in each adapter's tests, and the whole path in tests/integration.
"""

from __future__ import annotations

import json

import pytest
from zope.interface import implementer

from skyhooks import InvalidKeysError, RetryPolicy, StoreError, Topic
from skyhooks.core import IHookStore
from skyhooks.core.stores.memory import MemoryStore
from skyhooks.testing import MemoryTransport
from tests.core.test_registry import StepRegistry

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
A, B = "http://10.0.0.1:8001/skyhooks", "http://10.0.0.2:8001/skyhooks"
T42, T7 = Topic("account_id", "42"), Topic("account_id", "7")
# Retries with waits of a millisecond at most: the logic is core's, timed by its own tests.
FAST = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.001, deadline=5.0, timeout=1.0)


class World:
    """A store, a transport and receiving registries in memory, and a publisher under test."""

    def __init__(self, driver, store=None, **options) -> None:
        self.driver = driver
        self.store = store or MemoryStore()
        self.transport = MemoryTransport()
        self.got: dict[str, list] = {}
        self.publisher = driver.publisher(self.store, SECRET, self.transport, retry=FAST, **options)

    def listen(self, url: str, *topics: Topic, callbacks: bool = True) -> StepRegistry:
        registry = StepRegistry(url, self.store, SECRET)
        self.got[url] = []
        if callbacks:
            for topic in topics:
                registry.register({topic.name: topic.value}, self.got[url].append)
        self.store.add(url, topics, 90)
        self.transport.route(url, registry)
        return registry

    def notify(self, keys, data):
        return self.driver.run(lambda: self.publisher.notify(keys, data))

    def notify_many(self, messages):
        return self.driver.run(lambda: self.publisher.notify_many(messages))


def test_delivers_to_every_listening_instance_and_reports(driver):
    world = World(driver)
    world.listen(A, T42)
    world.listen(B, T42, T7)
    report = world.notify({"account_id": 42}, {"progress": 100})
    assert report.urls == report.delivered == {A, B}
    assert report.failed == {} and report.pruned == frozenset() and report.notified == 2
    assert [m.data for m in world.got[A]] == [{"progress": 100}] == [m.data for m in world.got[B]]
    assert world.got[A][0].id == report.message_id
    assert len(world.transport.sent) == 2  # one POST per instance


def test_nobody_listening_sends_nothing(driver):
    world = World(driver)
    report = world.notify({"account_id": 42}, 1)
    assert report.urls == frozenset() and report.notified == 0 and world.transport.sent == []


def test_a_5xx_is_retried_then_delivered(driver):
    world = World(driver)
    world.listen(A, T42)
    world.transport.answer(A, 503)
    world.transport.fail(A, "error", "reset")
    report = world.notify({"account_id": 42}, 1)
    assert report.delivered == {A} and report.notified == 1
    assert len(world.transport.sent) == 3
    assert len({sent.headers["webhook-id"] for sent in world.transport.sent}) == 1  # the same message id


def test_a_refused_url_is_retried_then_pruned(driver):
    world = World(driver)
    world.store.add(A, [T42], 90)  # nothing listens there: refused
    report = world.notify({"account_id": 42}, 1)
    assert report.delivered == frozenset() and report.pruned == {A}
    assert "refused" in report.failed[A] and "3 attempts" in report.failed[A]
    assert world.store.lookup({T42}) == {}


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_url_is_pruned_at_once(driver, status):
    world = World(driver)
    world.listen(A, T42)
    world.transport.answer(A, status)
    report = world.notify({"account_id": 42}, 1)
    assert report.pruned == {A} and f"HTTP {status}" in report.failed[A] and len(world.transport.sent) == 1


def test_a_timeout_is_reported_not_pruned(driver):
    world = World(driver)
    world.listen(A, T42)
    for _ in range(3):
        world.transport.fail(A, "timeout", "no answer")
    report = world.notify({"account_id": 42}, 1)
    assert "timeout" in report.failed[A] and report.pruned == frozenset()
    assert world.store.lookup({T42}) == {A: frozenset({T42})}


def test_notified_zero_drops_the_topic_but_keeps_the_url(driver):
    world = World(driver)
    world.listen(A, T42, T7, callbacks=False)
    report = world.notify({"account_id": 42}, 1)
    assert report.delivered == {A} and report.notified == 0
    assert world.store.lookup({T42, T7}) == {A: frozenset({T7})}


def test_notify_many_sends_one_batch_per_instance_and_a_report_per_message(driver):
    world = World(driver)
    world.listen(A, T42, T7)
    world.listen(B, T7)
    reports = world.notify_many(
        [({"account_id": 42}, "a"), ({"account_id": 7}, "b"), ({"account_id": 9}, "c")]
    )
    assert [r.notified for r in reports] == [1, 2, 0]
    assert reports[0].delivered == {A} and reports[1].delivered == {A, B} and reports[2].urls == frozenset()
    bodies = {sent.url: json.loads(sent.body) for sent in world.transport.sent}
    assert len(world.transport.sent) == 2
    assert [m["data"] for m in bodies[A]["messages"]] == ["a", "b"]  # one batch for A
    assert bodies[B]["data"] == "b"  # one message alone keeps the v1 format
    assert [m.data for m in world.got[A]] == ["a", "b"]


def test_bad_input_raises_before_anything_is_sent(driver):
    world = World(driver)
    world.listen(A, T42)
    with pytest.raises(InvalidKeysError):
        world.notify({"bad key": 1}, 1)
    with pytest.raises(ValueError, match="JSON"):
        world.notify({"account_id": 42}, {"x": object()})
    assert world.transport.sent == []


@implementer(IHookStore)
class UnreadableStore(MemoryStore):
    def lookup(self, topics):
        raise StoreError("lookup failed: the store is down (on purpose)")

    lookup_nowait = lookup


def test_an_unreadable_store_raises_store_error_and_sends_nothing(driver):
    world = World(driver, store=UnreadableStore())
    with pytest.raises(StoreError):
        world.notify({"account_id": 42}, 1)
    assert world.transport.sent == []


def test_a_receiver_that_is_not_skyhooks_counts_as_one_delivery(driver):
    world = World(driver)
    world.store.add(A, [T42], 90)
    world.transport.answer(A, 200, b"thanks")
    report = world.notify({"account_id": 42}, 1)
    assert (
        report.delivered == {A}
        and report.notified == 1
        and world.store.lookup({T42}) == {A: frozenset({T42})}
    )


def test_close_closes_the_transport(driver):
    world = World(driver)
    world.publisher.close()
    assert world.transport.closed


def test_a_transport_that_breaks_the_contract_is_refused_with_a_clear_error(driver):
    from zope.interface import implementer

    from skyhooks import ConfigurationError
    from skyhooks.core.delivery import ITransport

    @implementer(ITransport)
    class NoClose:
        def post(self, url, headers, body, timeout): ...

    with pytest.raises(ConfigurationError, match="ITransport"):
        driver.publisher(MemoryStore(), SECRET, NoClose())
    with pytest.raises(ConfigurationError, match="implementer"):
        driver.publisher(MemoryStore(), SECRET, object())
