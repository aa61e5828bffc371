"""A process forked from one that uses a blocking ``Publisher`` (Celery's prefork
pool, gunicorn's ``--preload``, ``multiprocessing``): the child gets none of the
parent's locks, lanes, pool threads, connections or calls in progress, whatever
the parent's threads were doing at the moment of the fork. Real forks, real
receivers on 127.0.0.1; each child reports through a queue, with a deadline, so
a child that hangs fails the test instead of hanging it."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from skyhooks import Publisher, RetryPolicy, Topic
from skyhooks.core import forks
from skyhooks.core.errors import WouldBlock
from skyhooks.core.stores.memory import MemoryStore
from skyhooks.testing import MemoryTransport
from tests.support.receiver import Receiver

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")

T42 = Topic("account_id", "42")
T7 = Topic("account_id", "7")
FAST = RetryPolicy(attempts=2, backoff=0.05, max_backoff=0.2, deadline=5, timeout=2)
FORK = multiprocessing.get_context("fork")


def in_child(run: Callable[[], Any], timeout: float = 20) -> Any:
    """What *run* returns in a forked child (or raises there, as an AssertionError)."""
    queue: multiprocessing.Queue = FORK.Queue()

    def child() -> None:
        try:
            queue.put(("ok", run()))
        except BaseException as exc:
            queue.put(("error", repr(exc)))

    process = FORK.Process(target=child)
    process.start()
    try:
        kind, value = queue.get(timeout=timeout)
    except Exception:
        process.kill()
        raise AssertionError(f"the forked child did not answer within {timeout} s (hung)") from None
    finally:
        process.join(10)
    assert kind == "ok", value
    return value


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def outcome(report: Any) -> tuple[bool, list[str]]:
    return report.ok, sorted(report.delivered)


def test_a_child_forked_while_deliveries_are_in_flight_delivers_at_once(sqlite_store, secret):
    """Forked while the parent's threads are stuck mid-delivery: six in notify(),
    an instance's lane full (max_in_flight=1) and five callers queued in it, after
    fan-outs that left idle pool threads. Each of those once hung the child for ever."""
    store = sqlite_store
    with Receiver(["hang", 200]) as slow, Receiver() as b, Receiver() as c:
        store.add(slow.url, {T42}, ttl=60)
        store.add(b.url, {T7}, ttl=60)
        store.add(c.url, {T7}, ttl=60)
        with Publisher(store, secret, retry=FAST, max_in_flight=1) as publisher:
            assert publisher.notify({"account_id": 7}, "parent").ok  # two instances: the thread pool
            stuck = [
                threading.Thread(target=publisher.notify, args=({"account_id": 42}, i)) for i in range(6)
            ]
            for thread in stuck:
                thread.start()
            wait_for(lambda: slow.count == 1)
            time.sleep(0.2)  # the other five: queued in the lane

            def child() -> list[Any]:
                one = publisher.notify({"account_id": 42}, "child")  # its own lane: not full
                fan_out = publisher.notify({"account_id": 7}, "child")  # its own pool threads
                submitted = publisher.submit({"account_id": 7}, "child, submitted").result(10)
                return [outcome(one), outcome(fan_out), outcome(submitted)]

            assert in_child(child) == [
                (True, [slow.url]),
                (True, sorted([b.url, c.url])),
                (True, sorted([b.url, c.url])),
            ]
            slow.release()
            for thread in stuck:
                thread.join(20)
            assert not any(thread.is_alive() for thread in stuck)


def test_a_child_forked_while_a_thread_holds_the_publishers_locks_is_not_deadlocked(sqlite_store, secret):
    """A thread of the parent's inside a critical section at the fork (the window
    is a few lines, so here it is held open on purpose): in the child that lock
    would stay locked for ever."""
    store = sqlite_store
    with Receiver() as r:
        store.add(r.url, {T42}, ttl=60)
        with Publisher(store, secret, retry=FAST, lookup_cache=30) as publisher:
            assert publisher.notify({"account_id": 42}, "parent").ok
            assert publisher.submit({"account_id": 42}, "parent, submitted").result(10).ok
            locks = [
                publisher._lock,
                publisher._coalescer._lock,
                publisher.transport._pools.pools.lock,  # urllib3's pools by origin
                publisher._targets._lock,
                store._lock,
            ]
            holding, release = threading.Event(), threading.Event()

            def hold() -> None:
                for lock in locks:
                    lock.acquire()
                holding.set()
                release.wait(30)
                for lock in locks:
                    lock.release()

            holder = threading.Thread(target=hold)
            holder.start()
            holding.wait(10)
            try:

                def child() -> list[Any]:
                    return [
                        outcome(publisher.notify({"account_id": 42}, "child")),
                        outcome(publisher.submit({"account_id": 42}, "child, submitted").result(10)),
                        [
                            outcome(rep)
                            for rep in publisher.notify_many([({"account_id": 42}, n) for n in range(3)])
                        ],
                    ]

                delivered = (True, [r.url])
                assert in_child(child) == [delivered, delivered, [delivered] * 3]
            finally:
                release.set()
                holder.join(10)
            assert publisher.notify({"account_id": 42}, "parent again").ok


def test_a_forked_child_never_shares_a_connection_with_its_parent(sqlite_store, secret):
    """Two processes writing to one kept-alive connection read each other's replies.
    The child opens its own, and closing its copy of the parent's leaves the
    parent's open (the parent goes on with the same connection)."""
    store = sqlite_store
    with Receiver() as r:
        store.add(r.url, {T42}, ttl=60)
        with Publisher(store, secret, retry=FAST) as publisher:
            assert publisher.notify({"account_id": 42}, "parent").ok
            assert in_child(lambda: publisher.notify({"account_id": 42}, "child").ok)
            assert publisher.notify({"account_id": 42}, "parent again").ok
        parent, child, parent_again = (request["peer"] for request in r.requests)
        assert child != parent
        assert parent_again == parent


class _LookupsInThreads(MemoryStore):
    """Its lookup_nowait always would wait: every lookup goes to the publisher's thread pool."""

    def lookup_nowait(self, topics: Any) -> Any:
        raise WouldBlock("in a thread, please")


def test_a_child_of_a_process_that_used_an_asyncio_publisher_runs_its_store_calls(secret):
    """The asyncio publisher (Tornado's) runs store calls in a pool of its own.
    Used once in the parent, that pool counts a worker the child does not have
    as idle, and started none: the child's first lookup waited for ever."""
    from skyhooks.asyncio import Publisher as AsyncioPublisher

    store = _LookupsInThreads()
    url = "http://10.0.0.5:8001/skyhooks"
    store.add(url, {T42}, ttl=60)
    transport = MemoryTransport()
    for _ in range(3):
        transport.answer(url, 200, b'{"status":"ok","notified":1}')
    publisher = AsyncioPublisher(store, secret, retry=FAST, transport=transport)

    def notify(data: str) -> bool:
        async def deliver() -> bool:
            return (await asyncio.wait_for(publisher.notify({"account_id": 42}, data), 5)).ok

        return asyncio.run(deliver())

    assert notify("parent")
    assert in_child(lambda: notify("child"))
    assert notify("parent again")
    publisher.close()
    sent = [json.loads(request.body)["data"] for request in transport.sent]
    assert sent == ["parent", "parent again"]  # (the child's went in the child's copy)


class _Resettable:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.name, self.fail = name, fail
        forks.reset_in_child(self)

    def _after_fork(self) -> None:
        if self.fail:
            raise RuntimeError("this one fails")
        self.name += " (reset)"


def test_reset_in_child_runs_in_the_child_only_and_one_failure_stops_no_other():
    first, failing, last = _Resettable("first"), _Resettable("failing", fail=True), _Resettable("last")
    assert in_child(lambda: (first.name, last.name)) == ("first (reset)", "last (reset)")
    assert (first.name, failing.name, last.name) == ("first", "failing", "last")


def test_reset_in_child_holds_its_objects_weakly():
    gone = _Resettable("gone")
    key = id(gone)
    assert key in forks._OBJECTS
    del gone
    assert key not in forks._OBJECTS
