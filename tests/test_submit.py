"""``skyhooks.Publisher.submit``: deliveries handed to the publisher's own loop
thread, a future each, against real HTTP receivers on 127.0.0.1 (and a real
fork, for the Celery prefork case)."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future

import pytest

from skyhooks import (
    InvalidDataError,
    InvalidKeysError,
    Publisher,
    RetryPolicy,
    StoreError,
    Topic,
    _background,
)
from tests.support.receiver import Receiver

T42 = Topic("account_id", "42")
FAST = RetryPolicy(attempts=2, backoff=0.05, max_backoff=0.2, deadline=5, timeout=2)


@pytest.fixture
def store(sqlite_store):
    return sqlite_store


def carried(request: dict) -> int:
    payload = json.loads(request["body"])
    return len(payload["messages"]) if "messages" in payload else 1


def test_submitted_messages_all_arrive_each_with_its_report(store, secret):
    with Receiver(["sleep:0.05", 200]) as r:
        store.add(r.url, {T42}, ttl=60)
        with Publisher(store, secret, retry=FAST) as publisher:
            futures = [publisher.submit({"account_id": 42}, {"i": i}) for i in range(50)]
            assert all(isinstance(f, Future) for f in futures)
            reports = [f.result(10) for f in futures]
        assert all(rep.delivered == {r.url} and rep.notified == 1 for rep in reports)
        assert len({rep.message_id for rep in reports}) == 50
        # Submitted together behind a slow first POST, they coalesced into few POSTs.
        assert sum(carried(q) for q in r.requests) == 50
        assert len(r.requests) < 50
        sent = [json.loads(q["body"]) for q in r.requests]
        data = [m["data"]["i"] for p in sent for m in p.get("messages", [p])]
        assert sorted(data) == list(range(50))


def test_bad_input_raises_from_submit_itself(store, secret):
    with Receiver() as r, Publisher(store, secret) as publisher:
        store.add(r.url, {T42}, ttl=60)
        with pytest.raises(InvalidKeysError):
            publisher.submit({"account id": 42}, 1)
        with pytest.raises(InvalidDataError):
            publisher.submit({"account_id": 42}, {"x": float("nan")})
        assert r.count == 0


def test_a_store_that_cannot_be_read_fails_the_future(tmp_path, secret):
    with Publisher(f"sqlite:///{tmp_path}/missing/dir/hooks.db", secret) as publisher:
        future = publisher.submit({"account_id": 42}, 1)
        with pytest.raises(StoreError):
            future.result(10)


def test_failures_are_in_the_report_not_lost(store, secret):
    with Receiver([500]) as r, Publisher(store, secret, retry=FAST) as publisher:
        store.add(r.url, {T42}, ttl=60)
        report = publisher.submit({"account_id": 42}, 1).result(10)
    assert not report.ok and report.failed[r.url].startswith("HTTP 500")


def test_max_pending_makes_submit_wait_and_close_waits_for_everything(store, secret):
    with Receiver(["sleep:0.5"]) as r:
        store.add(r.url, {T42}, ttl=60)
        publisher = Publisher(store, secret, retry=FAST, max_pending=2, max_in_flight=2)
        first = [publisher.submit({"account_id": 42}, i) for i in range(2)]
        third: list[Future] = []
        waiter = threading.Thread(target=lambda: third.append(publisher.submit({"account_id": 42}, 2)))
        waiter.start()
        waiter.join(0.25)
        assert waiter.is_alive() and not third  # two unfinished: the third waits
        waiter.join(5)
        assert third and any(f.done() for f in first)  # admitted once one had finished
        publisher.close()  # waits for the third to be delivered
        assert third[0].done() and third[0].result().ok
        assert sum(carried(q) for q in r.requests) == 3
    with pytest.raises(ValueError, match="max_pending"):
        Publisher(store, secret, max_pending=0)


def _submit_in_child(publisher: Publisher, queue: multiprocessing.Queue, finalise: bool) -> None:
    report = publisher.submit({"account_id": 42}, "from the child").result(10)
    # What the child inherited of the parent's loop (its connections, its
    # selector) is garbage here; collecting it must not reach the parent's.
    # With *finalise*, what the child keeps of it goes too, as when a child
    # ends through interpreter shutdown rather than os._exit.
    if finalise:
        _background._ABANDONED.clear()
    gc.collect()
    queue.put((os.getpid(), report.ok, report.message_id))


@pytest.mark.parametrize("finalise", [False, True], ids=["child-collects", "child-finalises"])
def test_a_forked_child_gets_a_loop_of_its_own(store, secret, finalise):
    """Celery's prefork pool: a publisher made (and used) in the parent, then
    forked. The parent's connection goes on working: before the fix, the
    child's garbage collection unregistered it from the epoll instance both
    share, and the parent's next POST there was never answered (sent again on
    a new connection after the 2 s timeout)."""
    with Receiver() as r:
        store.add(r.url, {T42}, ttl=60)
        with Publisher(store, secret, retry=FAST) as publisher:
            before = publisher.submit({"account_id": 42}, "parent").result(10)
            fork = multiprocessing.get_context("fork")
            queue: multiprocessing.Queue = fork.Queue()
            child = fork.Process(target=_submit_in_child, args=(publisher, queue, finalise))
            child.start()
            pid, ok, child_id = queue.get(timeout=20)
            child.join(20)
            after = publisher.submit({"account_id": 42}, "parent again").result(10)
        assert child.exitcode == 0 and pid != os.getpid() and ok
        assert before.ok and after.ok
        assert len({before.message_id, child_id, after.message_id}) == 3  # the child's ids are its own
        assert r.count == 3  # no POST sent twice
        parent, _, parent_again = (request["peer"] for request in r.requests)
        assert parent_again == parent  # on the parent's kept connection


def test_many_threads_may_submit_at_once(store, secret):
    with Receiver() as r, Publisher(store, secret, retry=FAST, max_pending=8) as publisher:
        store.add(r.url, {T42}, ttl=60)
        futures: list[Future] = []
        lock = threading.Lock()

        def run(n: int) -> None:
            for i in range(25):
                future = publisher.submit({"account_id": 42}, {"thread": n, "i": i})
                with lock:
                    futures.append(future)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        reports = [f.result(10) for f in futures]
        assert len(reports) == 100 and all(rep.ok for rep in reports)
        time.sleep(0.05)
        assert sum(carried(q) for q in r.requests) == 100


def test_a_script_that_ends_without_close_still_delivers_what_it_submitted(sqlite_url, sqlite_store, secret):
    """The loop thread is a daemon; an exit hook finishes what was in flight."""
    import subprocess
    import sys
    import textwrap

    with Receiver(["sleep:0.3", 200]) as r:
        sqlite_store.add(r.url, {T42}, ttl=60)
        script = textwrap.dedent(
            f"""
            from skyhooks import Publisher
            publisher = Publisher({sqlite_url!r}, {secret!r})
            for i in range(20):
                publisher.submit({{"account_id": 42}}, i)
            print("submitted")  # and the script ends here, without close()
            """
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and done.stdout.strip() == "submitted", done.stderr
        assert sum(carried(q) for q in r.requests) == 20


# -- notify() from a crowd of threads: the calls beyond the first few queue and travel together


def spy_on_crowd(publisher: Publisher) -> list[list[str]]:
    """Record the message ids of every delivery the crowd's queue made."""
    batches: list[list[str]] = []
    deliver = publisher._deliver_encoded

    def recording(messages):
        batches.append([m.id for m in messages])
        return deliver(messages)

    publisher._deliver_encoded = recording  # type: ignore[method-assign]
    publisher._crowd._deliver = recording
    return batches


def test_notify_alone_delivers_its_own_message(store, secret):
    with Receiver() as r, Publisher(store, secret, retry=FAST) as publisher:
        store.add(r.url, {T42}, ttl=60)
        batches = spy_on_crowd(publisher)
        reports = [publisher.notify({"account_id": 42}, i) for i in range(20)]
        assert all(rep.ok for rep in reports) and r.count == 20
        assert batches == [] and publisher._background._thread is None  # no queue, no loop thread


def crowd_notify(publisher: Publisher, first: int, rest: int, pause: float) -> tuple[dict, list]:
    """*first* threads call notify at once, then after *pause* *rest* more do."""
    reports: dict[int, object] = {}

    def send(i: int) -> None:
        reports[i] = publisher.notify({"account_id": 42}, {"i": i})

    early = [threading.Thread(target=send, args=(i,)) for i in range(first)]
    for t in early:
        t.start()
    time.sleep(pause)
    late = [threading.Thread(target=send, args=(i,)) for i in range(first, first + rest)]
    for t in late:
        t.start()
    for t in early + late:
        t.join(10)
    return reports, late


def test_notify_calls_beyond_the_inline_few_queue_and_travel_together(store, secret):
    from skyhooks._publisher import INLINE_NOTIFIES

    crowd = INLINE_NOTIFIES + 6
    # The first POSTs answer slowly, so the first few notify() calls are still
    # unfinished when the rest of the crowd arrives.
    with Receiver(["sleep:1"] * 2 + [200]) as r, Publisher(store, secret, retry=FAST) as publisher:
        store.add(r.url, {T42}, ttl=60)
        batches = spy_on_crowd(publisher)
        reports, _ = crowd_notify(publisher, INLINE_NOTIFIES, crowd - INLINE_NOTIFIES, 0.3)
        assert sorted(reports) == list(range(crowd))
        assert all(rep.ok and rep.delivered == {r.url} and rep.notified == 1 for rep in reports.values())
        assert len({rep.message_id for rep in reports.values()}) == crowd
        # Exactly the late ones queued, and went in fewer deliveries than messages...
        late_ids = {reports[i].message_id for i in range(INLINE_NOTIFIES, crowd)}
        assert sorted(i for b in batches for i in b) == sorted(late_ids)
        assert len(batches) < len(late_ids)
        # ...and every message arrived once, in fewer POSTs than messages.
        sent = [json.loads(q["body"]) for q in r.requests]
        data = [m["data"]["i"] for p in sent for m in p.get("messages", [p])]
        assert sorted(data) == list(range(crowd))
        assert len(r.requests) < crowd
        assert publisher._notifying == 0  # every call counted out


def test_the_queued_calls_keep_to_max_in_flight(store, secret):
    # One POST in flight at most, whether a call delivers its own message or the queue's.
    from skyhooks._publisher import INLINE_NOTIFIES

    with Receiver(["sleep:0.3"]) as r, Publisher(store, secret, retry=FAST, max_in_flight=1) as publisher:
        store.add(r.url, {T42}, ttl=60)
        in_flight, most = [0], [0]
        lock = threading.Lock()
        post = publisher._http.post

        def counting(*args, **kwargs):
            with lock:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
            try:
                return post(*args, **kwargs)
            finally:
                with lock:
                    in_flight[0] -= 1

        publisher._http.post = counting  # type: ignore[method-assign]
        reports, _ = crowd_notify(publisher, INLINE_NOTIFIES, 8, 0.1)
        assert len(reports) == INLINE_NOTIFIES + 8 and all(rep.ok for rep in reports.values())
        assert most[0] == 1


def test_a_queued_notify_raises_and_reports_as_an_inline_one(tmp_path, store, secret, monkeypatch):
    monkeypatch.setattr("skyhooks._publisher.INLINE_NOTIFIES", 0)  # every call queues
    with Receiver([500]) as r, Publisher(store, secret, retry=FAST) as publisher:
        store.add(r.url, {T42}, ttl=60)
        batches = spy_on_crowd(publisher)
        report = publisher.notify({"account_id": 42}, 1)
        assert batches == [[report.message_id]]
        assert not report.ok and report.failed[r.url].startswith("HTTP 500")
        with pytest.raises(InvalidKeysError):
            publisher.notify({"account id": 42}, 1)
        assert len(batches) == 1  # refused before it queued
    broken = Publisher(f"sqlite:///{tmp_path}/missing/dir/hooks.db", secret)
    with broken, pytest.raises(StoreError):
        broken.notify({"account_id": 42}, 1)


def test_every_caller_in_a_delivery_that_failed_gets_its_error(store, secret, monkeypatch):
    monkeypatch.setattr("skyhooks._publisher.INLINE_NOTIFIES", 0)  # every call queues
    with Receiver(["sleep:0.3"]) as r, Publisher(store, secret, retry=FAST) as publisher:
        store.add(r.url, {T42}, ttl=60)
        deliver = publisher._deliver_encoded
        batches: list[tuple[list[str], bool]] = []

        def failing_batches(messages):
            # A delivery of several messages (those that queued behind the first
            # two) fails as a store that went away fails it.
            batches.append(([m.id for m in messages], len(messages) > 1))
            if len(messages) > 1:
                raise StoreError("the store went away")
            return deliver(messages)

        publisher._crowd._deliver = failing_batches
        outcomes: dict[int, object] = {}

        def send(i: int) -> None:
            try:
                outcomes[i] = publisher.notify({"account_id": 42}, i)
            except StoreError as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
        for t in threads[:2]:  # two deliveries at once, 0.3 s each: the rest queue
            t.start()
        time.sleep(0.1)
        for t in threads[2:]:
            t.start()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads) and len(outcomes) == 6
        failed = {i for ids, many in batches if many for i in ids}
        assert failed, batches
        for outcome in outcomes.values():
            if isinstance(outcome, StoreError):
                continue
            assert outcome.ok and outcome.message_id not in failed  # type: ignore[union-attr]
        assert sum(isinstance(o, StoreError) for o in outcomes.values()) == len(failed)
        publisher._crowd._deliver = deliver
        assert publisher.notify({"account_id": 42}, "after").ok  # the queue is not stuck


class Interrupted(BaseException):
    """A KeyboardInterrupt stand-in, raised in one caller's wait."""


@pytest.mark.parametrize("when", ["before its turn came", "after its turn came"])
def test_a_caller_interrupted_while_queued_leaves_the_queue_moving(store, secret, monkeypatch, when):
    import skyhooks._publisher as module
    from skyhooks.core.publisher import _Waiter

    monkeypatch.setattr(module, "INLINE_NOTIFIES", 0)  # every call queues
    made: list = []

    class Waiter(_Waiter):
        __slots__ = ()

        def wait(self):
            if len(made) > 2 and self is made[2]:  # the first caller that queues behind two deliveries
                if when == "after its turn came":
                    super().wait()
                raise Interrupted
            return super().wait()

    def new_waiter() -> Waiter:
        waiter = Waiter()
        made.append(waiter)
        return waiter

    monkeypatch.setattr(module, "_Waiter", new_waiter)
    with Receiver(["sleep:0.3", "sleep:0.3", 200]) as r, Publisher(store, secret, retry=FAST) as publisher:
        store.add(r.url, {T42}, ttl=60)
        outcomes: dict[int, object] = {}

        def send(i: int) -> None:
            try:
                outcomes[i] = publisher.notify({"account_id": 42}, i)
            except Interrupted as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=send, args=(i,)) for i in range(5)]
        for t in threads[:2]:
            t.start()
        time.sleep(0.1)
        for t in threads[2:]:
            t.start()
            time.sleep(0.02)  # in order: the third caller queues first
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads), "a queued caller was left waiting"
        assert isinstance(outcomes[2], Interrupted)
        assert all(outcomes[i].ok for i in (0, 1, 3, 4))  # type: ignore[union-attr]
        sent = [json.loads(q["body"]) for q in r.requests]
        assert sorted(m["data"] for p in sent for m in p.get("messages", [p])) == [0, 1, 2, 3, 4]
        assert publisher.notify({"account_id": 42}, "after").ok
