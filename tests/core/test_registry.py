"""The shared registry logic, driven step by step.

``StepRegistry`` is a test double for the four adapter hooks: store jobs wait
in a queue until the test runs them, timers fire when the test advances a
clock. That makes ordering (serialised, coalesced writes), retries and stop
deterministic to check; the real adapters run the same logic in the behaviour
suite over real sockets and processes.
"""

from __future__ import annotations

import logging

import pytest

from skyhooks import Message, StoreError, Topic
from skyhooks.core import BaseRegistry, SkyhooksError
from skyhooks.core.stores.memory import MemoryStore
from skyhooks.core.wire import Signer

URL = "http://127.0.0.1:8001/skyhooks"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
T42, T7 = Topic("account_id", "42"), Topic("account_id", "7")


class Waiter:
    def __init__(self):
        self.done = False
        self.result = None

    def resolve(self, value):
        assert not self.done, "resolved twice"
        self.done, self.result = True, value


class Timer:
    def __init__(self, when, fn):
        self.when, self.fn, self.cancelled = when, fn, False

    def cancel(self):
        self.cancelled = True


class StepRegistry(BaseRegistry[Waiter]):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.jobs = []
        self.timers = []
        self.now = 0.0

    def _run_blocking(self, fn, done):
        self.jobs.append((fn, done))

    def _call_later(self, delay, fn):
        timer = Timer(self.now + delay, fn)
        self.timers.append(timer)
        return timer

    def _new_waiter(self):
        waiter = Waiter()
        return waiter, waiter.resolve

    def run_jobs(self):
        ran = 0
        while self.jobs:
            fn, done = self.jobs.pop(0)
            try:
                result = fn()
            except Exception as exc:
                done(None, exc)
            else:
                done(result, None)
            ran += 1
        return ran

    def advance(self, seconds):
        self.now += seconds
        for timer in sorted(self.timers, key=lambda t: t.when):
            if timer.when <= self.now and not timer.cancelled:
                timer.cancelled = True
                timer.fn()


class FlakyStore(MemoryStore):
    """A memory store that fails while ``down`` is set, like an unreachable server."""

    def __init__(self):
        super().__init__()
        self.down = False
        self.calls = []

    def __getattribute__(self, name):
        attr = super().__getattribute__(name)
        if name in ("add", "remove", "remove_url", "renew"):

            def call(*args):
                self.calls.append(name)
                if self.down:
                    raise StoreError(f"{name}: store is down")
                return attr(*args)

            return call
        return attr


@pytest.fixture
def store():
    return FlakyStore()


@pytest.fixture
def registry(store):
    return StepRegistry(URL, store, SECRET, ttl=30)


def record(into):
    def callback(message):
        into.append(message)

    return callback


def test_nothing_is_written_before_start_then_everything_is(registry, store):
    waiter = registry.register({"account_id": 42}, record([]))
    assert registry.jobs == [] and not waiter.done
    registry.start()
    registry.start()  # idempotent
    assert registry.run_jobs() == 1
    assert store.calls == ["renew"]
    assert waiter.done
    assert store.lookup({T42}) == {URL: frozenset({T42})}


def test_writes_are_serialised_and_coalesced(registry, store):
    registry.start()
    registry.run_jobs()
    one, two = record([]), record([])
    first = registry.register({"account_id": 42}, one)
    assert len(registry.jobs) == 1  # in flight
    second = registry.unregister({"account_id": 42}, one)  # dead again: pending, not a new job
    third = registry.register({"account_id": 7}, two)
    assert len(registry.jobs) == 1
    fn, done = registry.jobs.pop(0)
    done(fn(), None)
    assert first.done and not second.done and not third.done
    assert len(registry.jobs) == 1  # the coalesced follow-up: remove 42, add 7
    registry.run_jobs()
    assert second.done and third.done
    assert store.lookup({T42, T7}) == {URL: frozenset({T7})}


def test_a_new_callback_on_a_live_topic_needs_no_write(registry, store):
    registry.start()
    registry.register({"account_id": 42}, record([]))
    registry.run_jobs()
    calls = len(store.calls)
    waiter = registry.register({"account_id": 42}, record([]))
    assert waiter.done and registry.jobs == [] and len(store.calls) == calls


def test_renews_every_third_of_the_ttl(registry, store):
    registry.register({"account_id": 42}, record([]))
    registry.start()
    registry.run_jobs()
    for _ in range(3):
        registry.advance(10)
        registry.run_jobs()
    assert store.calls == ["renew"] * 4


def test_a_failing_store_is_retried_with_backoff_as_a_full_renew(registry, store, caplog):
    registry.start()
    registry.run_jobs()
    store.down = True
    waiter = registry.register({"account_id": 42}, record([]))
    with caplog.at_level(logging.WARNING, "skyhooks.registry"):
        registry.run_jobs()
    assert "retrying in" in caplog.text
    assert not waiter.done
    registry.register({"account_id": 7}, record([]))  # no write while backing off
    assert registry.jobs == []
    delays = []
    for _ in range(4):
        retry = [t for t in registry.timers if not t.cancelled and t.fn == registry._retry][-1]
        delays.append(retry.when - registry.now)
        registry.advance(retry.when - registry.now)
        registry.run_jobs()
    assert all(0 < d <= 10 for d in delays) and delays[-1] > delays[0]  # exponential, capped at ttl/3
    store.down = False
    store.remove_url(URL)  # the store came back empty
    retry = [t for t in registry.timers if not t.cancelled and t.fn == registry._retry][-1]
    registry.advance(retry.when - registry.now)
    registry.run_jobs()
    assert waiter.done
    assert store.calls[-1] == "renew"
    assert store.lookup({T42, T7}) == {URL: frozenset({T42, T7})}


def test_stop_waits_for_the_write_in_flight_then_removes_the_url(registry, store):
    registry.start()
    registry.run_jobs()
    registry.register({"account_id": 42}, record([]))
    stopped = registry.stop()
    assert len(registry.jobs) == 1  # the add, still in flight
    registry.run_jobs()
    assert stopped.done and stopped.result is True
    assert store.calls[-1] == "remove_url"
    assert store.lookup({T42}) == {}
    assert registry.stop().result is True
    with pytest.raises(SkyhooksError, match="stopped"):
        registry.start()
    registry.advance(100)  # no renewal after stop
    assert registry.jobs == []


def test_stop_gives_up_after_its_timeout(store):
    registry = StepRegistry(URL, store, SECRET, ttl=30, stop_timeout=0.0)
    registry.start()
    registry.run_jobs()
    store.down = True
    stopped = registry.stop()
    registry.run_jobs()
    assert stopped.done and stopped.result is False


def test_dispatch_counts_each_callback_once_and_survives_a_raising_one(registry, caplog):
    got = []

    def bad(message):
        raise RuntimeError("boom")

    registry.register({"account_id": 42}, bad)
    registry.register({"account_id": 42, "user_id": 1}, record(got))
    message = Signer(SECRET).build({"account_id": 42, "user_id": 1}, {"n": 1})
    with caplog.at_level(logging.ERROR, "skyhooks.registry"):
        response = registry.handle_request("POST", message.headers, message.body)
    assert (response.status, response.body) == (200, b'{"status":"ok","notified":2}')
    assert "boom" in caplog.text
    assert [m.data for m in got] == [{"n": 1}] and isinstance(got[0], Message)
    again = registry.handle_request("POST", message.headers, message.body)
    assert again.body == b'{"status":"ok","notified":0,"duplicate":true}'
    assert len(got) == 1


def test_bad_requests_are_answered_not_raised(registry):
    response = registry.handle_request("GET", {}, b"")
    assert response.status == 405 and response.headers["Allow"] == "POST"
    assert b'"status": "error"' in response.body


def test_unsafe_urls_and_ttls_are_refused(store):
    from skyhooks import ConfigurationError

    for url in (
        "ftp://x/h",
        "http://user:pw@x/h",
        "http://169.254.169.254/latest",
        "http://[fe80::1]/h",
        "nope",
    ):
        with pytest.raises(ConfigurationError, match="URL"):
            StepRegistry(url, store, SECRET)
    with pytest.raises(ConfigurationError, match="ttl"):
        StepRegistry(URL, store, SECRET, ttl=0)
    with pytest.raises(TypeError):
        StepRegistry(URL, store, SECRET).register({"a": 1}, "not callable")


def test_a_batch_dispatches_each_message_once_and_drops_duplicates_one_by_one(registry):
    got42, got7 = [], []
    registry.register({"account_id": 42}, record(got42))
    registry.register({"account_id": 7}, record(got7))
    signer = Signer(SECRET)
    first = signer.encode({"account_id": 42}, 1)
    second = signer.encode({"account_id": 7}, 2)
    third = signer.encode({"account_id": 99}, 3)
    batch = signer.build_batch([first, second, third])
    response = registry.handle_request("POST", batch.headers, batch.body)
    assert response.body == b'{"status":"ok","notified":2,"results":[1,1,0]}'
    # a publisher retrying with a new batch that repeats a message
    again = signer.build_batch([signer.encode({"account_id": 42}, 4), first])
    assert registry.handle_request("POST", again.headers, again.body).body == (
        b'{"status":"ok","notified":1,"results":[1,null]}'
    )
    assert [m.data for m in got42] == [1, 4] and [m.data for m in got7] == [2]
