"""The callback-style publisher base (``CallbackPublisher``), with a tiny promise of our
own: what the Twisted publisher gets, without Twisted. Its POSTs are answered when the
test says so, so what runs at once, what waits and what a cancel reaches is visible."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from zope.interface import implementer

from skyhooks import DeliveryReport, InvalidKeysError, Topic
from skyhooks.core.callback_publisher import CallbackPublisher
from skyhooks.core.delivery import HTTPResult, ITransport
from skyhooks.core.stores.memory import MemoryStore
from skyhooks.testing import MemoryTransport
from tests.core.test_registry import StepRegistry

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
A42, T42 = {"account_id": 42}, Topic("account_id", "42")
URLS = [f"http://10.0.0.{n}:8001/skyhooks" for n in range(1, 6)]
OK = HTTPResult(200, {}, b'{"status":"ok","notified":1}')


class Cancelled(Exception):
    pass


class Promise:
    """Settles once; listeners hear at once if it has. ``cancel()`` calls the canceller,
    then fails it with :class:`Cancelled` unless the canceller settled it."""

    def __init__(self, canceller: Callable[[Any], None] | None = None) -> None:
        self.canceller = canceller
        self.outcome: tuple[Any, BaseException | None] | None = None
        self.listeners: list[Callable[[Any, BaseException | None], None]] = []

    def settle(self, value: Any = None, error: BaseException | None = None) -> None:
        if self.outcome is None:
            self.outcome = (value, error)
            for listener in self.listeners:
                listener(value, error)

    def then(self, listener: Callable[[Any, BaseException | None], None]) -> None:
        if self.outcome is None:
            self.listeners.append(listener)
        else:
            listener(*self.outcome)

    def cancel(self) -> None:
        if self.outcome is None:
            if self.canceller is not None:
                self.canceller(self)
            self.settle(error=Cancelled())


class PromisePublisher(CallbackPublisher):
    _pending_type = Promise

    def _new_pending(self, cancel: Callable[[Any], None] | None) -> tuple[Promise, Any]:
        pending = Promise(cancel)
        return pending, pending.settle

    @staticmethod
    def _when_settled(pending: Promise, settle: Any) -> None:
        pending.then(settle)

    def _default_transport(self) -> Any:
        raise AssertionError("every test passes a transport")

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    def _sleep(self, seconds: float) -> Promise:
        raise AssertionError("nothing here is retried")


@implementer(ITransport)
class HeldTransport:
    """Every POST waits for the test to answer it."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Promise]] = []
        self.cancelled: list[str] = []
        self.closing = Promise()

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> Promise:
        pending = Promise(lambda _: self.cancelled.append(url))
        self.posts.append((url, pending))
        return pending

    def close(self) -> Promise:
        return self.closing

    def waiting(self) -> list[str]:
        return [url for url, pending in self.posts if pending.outcome is None]


def listening(*urls: str) -> MemoryStore:
    store = MemoryStore()
    for url in urls:
        store.add(url, {T42}, ttl=60)
    return store


def outcome(pending: Promise) -> tuple[Any, BaseException | None]:
    assert pending.outcome is not None, "still pending"
    return pending.outcome


def test_notify_settles_with_the_report_and_bad_input_fails_before_any_lookup() -> None:
    store, transport = listening(URLS[0]), MemoryTransport()
    got: list[Any] = []
    registry = StepRegistry(URLS[0], store, SECRET)
    registry.register(A42, got.append)
    transport.route(URLS[0], registry)
    publisher = PromisePublisher(store, SECRET, transport=transport)

    report, error = outcome(publisher.notify(A42, {"progress": 100}))
    assert error is None and isinstance(report, DeliveryReport)
    assert report.delivered == {URLS[0]} and report.notified == 1
    assert [message.data for message in got] == [{"progress": 100}]
    reports, error = outcome(publisher.notify_many([(A42, 1), (A42, 2)]))
    assert error is None and [r.notified for r in reports] == [1, 1]

    _, error = outcome(publisher.notify({}, "no keys"))
    assert isinstance(error, InvalidKeysError)
    assert len(transport.sent) == 2  # one POST each: the message, then the batch of two


def test_a_fan_out_keeps_at_most_concurrency_posts_in_flight_and_reports_every_url() -> None:
    transport = HeldTransport()
    publisher = PromisePublisher(listening(*URLS), SECRET, transport=transport, concurrency=2)
    notified = publisher.notify(A42, "x")
    for answered in range(len(URLS)):
        assert len(transport.waiting()) == min(2, len(URLS) - answered)
        assert notified.outcome is None
        transport.posts[answered][1].settle(OK)  # the next flow starts as one ends
    report, error = outcome(notified)
    assert error is None and report.delivered == set(URLS) and report.notified == len(URLS)
    assert sorted(url for url, _ in transport.posts) == sorted(URLS)


def test_cancelling_a_notify_closes_its_flows_and_cancels_the_posts_in_flight() -> None:
    transport = HeldTransport()
    publisher = PromisePublisher(listening(*URLS[:3]), SECRET, transport=transport, concurrency=2)
    notified = publisher.notify(A42, "x")
    in_flight = transport.waiting()
    assert len(in_flight) == 2
    notified.cancel()
    _, error = outcome(notified)
    assert isinstance(error, Cancelled)
    assert sorted(transport.cancelled) == sorted(in_flight)
    assert len(transport.posts) == 2  # the third flow never started


def test_close_settles_when_the_transport_has_closed() -> None:
    transport = HeldTransport()
    closed = PromisePublisher("memory://", SECRET, transport=transport).close()
    assert closed is transport.closing and closed.outcome is None
    transport.closing.settle()
    assert outcome(PromisePublisher("memory://", SECRET, transport=MemoryTransport()).close()) == (None, None)


def test_waiters_fire_at_once_and_never_nested() -> None:
    """A waiter resolved from inside another's firing fires after it, by the same loop:
    a chain of 3,000 stays at one stack depth, and every one has fired on return."""
    publisher = PromisePublisher("memory://", SECRET, transport=MemoryTransport())
    waiters = [publisher._new_waiter() for _ in range(3000)]
    order: list[int] = []
    depths: set[int] = set()

    def fired(value: int, error: BaseException | None) -> None:
        order.append(value)
        frame, depth = sys._getframe(), 0
        while frame is not None:
            frame, depth = frame.f_back, depth + 1
        depths.add(depth)
        if value + 1 < len(waiters):
            waiters[value + 1][1](value + 1)

    for waiter, _ in waiters:
        waiter.then(fired)
    waiters[0][1](0)
    assert order == list(range(3000))
    assert len(depths) == 1


@pytest.mark.parametrize("flows", [0, 1])
def test_a_gather_of_few_flows_settles_at_once(flows: int) -> None:
    from skyhooks.core.delivery import Gather

    def flow() -> Any:
        return "done"
        yield  # (a flow that never waits)

    publisher = PromisePublisher("memory://", SECRET, transport=MemoryTransport())
    assert outcome(publisher._gather(Gather([flow() for _ in range(flows)], 2))) == (["done"] * flows, None)
