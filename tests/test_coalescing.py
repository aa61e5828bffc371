"""Coalescing lanes (skyhooks.core.delivery.coalescer), the one coalescer: at most
max_in_flight POSTs per instance; messages for a busy instance leave together in its
next POST, whether they come from notify() in many threads or from submit(). Real
HTTP receivers on 127.0.0.1, the blocking publisher from threads and the Tornado
one from tasks."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from zope.interface import implementer

from skyhooks import Publisher, RetryPolicy, Topic
from skyhooks.blocking import Urllib3Transport
from skyhooks.core.delivery import ITransport
from tests.support.receiver import Receiver

T42 = Topic("account_id", "42")
T7 = Topic("account_id", "7")
FAST = RetryPolicy(attempts=1, deadline=5, timeout=2)


@pytest.fixture
def store(sqlite_store):
    return sqlite_store


def carried(request: dict) -> list[str]:
    """The message ids one recorded POST carried."""
    payload = json.loads(request["body"])
    if "messages" in payload:
        return [m["id"] for m in payload["messages"]]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    return [headers["webhook-id"]]


def notify_in_threads(publisher: Publisher, calls: list[tuple[dict, object]], gap: float = 0.0) -> list:
    reports: list = [None] * len(calls)

    def run(i: int) -> None:
        reports[i] = publisher.notify(*calls[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
        time.sleep(gap)
    for t in threads:
        t.join(10)
    return reports


def test_an_idle_instance_gets_each_message_alone(store, secret):
    with Receiver() as r, Publisher(store, secret, retry=FAST, max_in_flight=1) as publisher:
        store.add(r.url, {T42}, ttl=60)
        reports = [publisher.notify({"account_id": 42}, i) for i in range(5)]
        assert [carried(q) for q in r.requests] == [[rep.message_id] for rep in reports]
        assert all(rep.ok and rep.notified == 1 for rep in reports)


def test_messages_for_a_busy_instance_travel_together(store, secret):
    # The first POST takes 0.4 s; the five messages sent meanwhile wait and leave as one batch.
    with (
        Receiver(["sleep:0.4", 200]) as r,
        Publisher(store, secret, retry=FAST, max_in_flight=1) as publisher,
    ):
        store.add(r.url, {T42}, ttl=60)
        first = threading.Thread(target=lambda: reports.append(publisher.notify({"account_id": 42}, "first")))
        reports: list = []
        first.start()
        time.sleep(0.1)
        reports += notify_in_threads(publisher, [({"account_id": 42}, i) for i in range(5)])
        first.join(5)
        assert len(r.requests) == 2, [carried(q) for q in r.requests]
        assert carried(r.requests[0]) == [reports[0].message_id]
        assert sorted(carried(r.requests[1])) == sorted(rep.message_id for rep in reports[1:])
        for rep in reports:
            assert rep.delivered == {r.url} and rep.failed == {} and rep.notified == 1


def test_max_in_flight_bounds_posts_per_instance_and_zero_turns_it_off(store, secret):
    for limit, most in ((2, 2), (0, 6)):
        with (
            Receiver(["sleep:0.3"]) as r,
            Publisher(store, secret, retry=FAST, max_in_flight=limit) as publisher,
        ):
            store.add(r.url, {T42}, ttl=60)
            reports = notify_in_threads(publisher, [({"account_id": 42}, i) for i in range(6)], gap=0.02)
            assert all(rep.ok for rep in reports)
            # Everything sent within the first 0.3 s went in parallel: at most `most` POSTs then.
            if limit:
                assert len(r.requests) <= limit + 2  # the waiting ones in at most two more batches
            else:
                assert len(r.requests) == most  # one POST each
            assert sorted(i for q in r.requests for i in carried(q)) == sorted(x.message_id for x in reports)
            store.remove_url(r.url)


def test_a_hung_instance_holds_up_only_its_own_lane(store, secret):
    slow = RetryPolicy(attempts=1, deadline=5, timeout=1.0)
    with (
        Receiver(["hang"]) as hung,
        Receiver() as fine,
        Publisher(store, secret, retry=slow, max_in_flight=1) as publisher,
    ):
        store.add(hung.url, {T7}, ttl=60)
        store.add(fine.url, {T42}, ttl=60)
        stuck: list = []
        waiting = [
            threading.Thread(target=lambda i=i: stuck.append(publisher.notify({"account_id": 7}, i)))
            for i in range(3)
        ]
        for t in waiting:
            t.start()
        time.sleep(0.1)
        started = time.monotonic()
        report = publisher.notify({"account_id": 42}, "go")
        assert report.ok and time.monotonic() - started < 0.5
        for t in waiting:
            t.join(10)
        # The first waited out its timeout; the two queued behind it then went as one batch.
        assert len(stuck) == 3 and all(not rep.ok for rep in stuck)
        assert all("timeout" in rep.failed[hung.url] for rep in stuck)
        assert len(hung.requests) == 2


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@implementer(ITransport)
class Counting:
    """The real transport, counting the POSTs in flight at once."""

    def __init__(self) -> None:
        self.real = Urllib3Transport()
        self.lock = threading.Lock()
        self.in_flight = self.most = 0

    def post(self, *args):
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            return self.real.post(*args)
        finally:
            with self.lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.real.close()


def test_notify_from_threads_and_submit_share_the_lanes(store, secret):
    # One POST in flight at most, whoever sends: a thread's notify or a submission.
    transport = Counting()
    with (
        Receiver(["sleep:0.2", 200]) as r,
        Publisher(store, secret, retry=FAST, max_in_flight=1, transport=transport) as publisher,
    ):
        store.add(r.url, {T42}, ttl=60)
        futures = [publisher.submit({"account_id": 42}, f"submitted {i}") for i in range(8)]
        reports = notify_in_threads(publisher, [({"account_id": 42}, i) for i in range(8)])
        reports += [future.result(10) for future in futures]
        assert len(reports) == 16 and all(rep.ok and rep.notified == 1 for rep in reports)
        assert transport.most == 1
        assert sorted(i for q in r.requests for i in carried(q)) == sorted(rep.message_id for rep in reports)
        assert len(r.requests) < 16


def test_every_message_of_a_failed_batch_has_the_failure_in_its_report(store, secret):
    # The first POST is slow; what queued behind it leaves as one batch, which
    # fails twice (two attempts); the lane then goes on as before.
    with (
        Receiver(["sleep:0.5", 500, 500, 200]) as r,
        Publisher(store, secret, retry=RetryPolicy(attempts=2, backoff=0.01), max_in_flight=1) as publisher,
    ):
        store.add(r.url, {T42}, ttl=60)
        first: list = []
        lead = threading.Thread(target=lambda: first.append(publisher.notify({"account_id": 42}, "first")))
        lead.start()
        wait_for(lambda: r.count == 1)
        queued = notify_in_threads(publisher, [({"account_id": 42}, i) for i in range(4)])
        lead.join(10)
        assert first[0].ok
        assert all(not rep.ok and rep.failed[r.url].startswith("HTTP 500") for rep in queued)
        assert [len(carried(q)) for q in r.requests] == [1, 4, 4]  # one batch, sent twice
        assert publisher.notify({"account_id": 42}, "after").ok  # the lane is not stuck


class Interrupted(BaseException):
    """A KeyboardInterrupt stand-in, raised in one caller's wait."""


class InterruptedOnce(Publisher):
    """Interrupts the first caller that waits in a lane, before or after its
    turn to send came."""

    def __init__(self, *args, after_its_turn: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.after_its_turn = after_its_turn
        self.waiters: list = []

    def _new_waiter(self):
        waiter, resolve = super()._new_waiter()
        self.waiters.append(waiter)
        return waiter, resolve

    def _wait(self, waiter):
        if waiter is self.waiters[0]:
            if self.after_its_turn:
                super()._wait(waiter)
            raise Interrupted
        return super()._wait(waiter)


@pytest.mark.parametrize("after_its_turn", [False, True], ids=["before-its-turn", "after-its-turn"])
def test_a_caller_interrupted_in_a_lane_leaves_it_moving(store, secret, after_its_turn):
    with (
        Receiver(["sleep:0.3", "sleep:0.3", 200]) as r,
        InterruptedOnce(store, secret, retry=FAST, after_its_turn=after_its_turn) as publisher,
    ):
        store.add(r.url, {T42}, ttl=60)
        outcomes: dict[int, object] = {}

        def send(i: int) -> None:
            try:
                outcomes[i] = publisher.notify({"account_id": 42}, i)
            except Interrupted as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=send, args=(i,)) for i in range(5)]
        for t in threads[:2]:  # two POSTs in flight (max_in_flight=2): the others queue
            t.start()
        wait_for(lambda: r.count == 2)
        for i, t in enumerate(threads[2:], start=3):
            t.start()
            wait_for(lambda i=i: len(publisher.waiters) == i - 2)  # in order: the third caller first
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads), "a queued caller was left waiting"
        assert isinstance(outcomes[2], Interrupted)
        assert all(outcomes[i].ok for i in (0, 1, 3, 4))  # type: ignore[union-attr]
        sent = [json.loads(q["body"]) for q in r.requests]
        # The interrupted caller's message was never sent: nobody is left to read its report.
        assert sorted(m["data"] for p in sent for m in p.get("messages", [p])) == [0, 1, 3, 4]
        assert publisher.notify({"account_id": 42}, "after").ok


def test_a_cancelled_caller_leaves_the_lane_moving():
    """Tornado publisher: a queued caller cancelled is not sent; a sending
    caller cancelled hands what waits behind it to the next caller."""
    pytest.importorskip("tornado", reason="the Tornado publisher's case runs where tornado is installed")
    from skyhooks.core.stores.memory import MemoryStore
    from skyhooks.tornado import Publisher as TornadoPublisher

    async def scenario(cancel: str) -> tuple[list, list[list[str]]]:
        store = MemoryStore()
        with Receiver(["sleep:0.4", 200]) as r:
            store.add(r.url, {T42}, ttl=60)
            publisher = TornadoPublisher(store, "whsec_" + "A" * 32, retry=FAST, max_in_flight=1)
            lead = asyncio.ensure_future(publisher.notify({"account_id": 42}, "lead"))
            await asyncio.sleep(0.1)
            queued = [asyncio.ensure_future(publisher.notify({"account_id": 42}, i)) for i in range(3)]
            await asyncio.sleep(0.05)
            (lead if cancel == "lead" else queued[0]).cancel()
            # (a stuck lane would hang here: fail instead)
            results = await asyncio.wait_for(asyncio.gather(lead, *queued, return_exceptions=True), 5)
            publisher.close()
            await asyncio.sleep(0.45)  # the lead's abandoned POST ends (the receiver sleeps)
            return results, [carried(q) for q in r.requests]

    results, posts = asyncio.run(scenario("queued"))
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[0].ok and results[2].ok and results[3].ok
    assert posts == [[results[0].message_id], [results[2].message_id, results[3].message_id]]

    results, posts = asyncio.run(scenario("lead"))
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(rep.ok for rep in results[1:])
    assert sorted(posts[1]) == sorted(rep.message_id for rep in results[1:])


def test_max_in_flight_is_checked(store, secret):
    with pytest.raises(ValueError, match="max_in_flight"):
        Publisher(store, secret, max_in_flight=-1)
