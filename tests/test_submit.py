"""``skyhooks.Publisher.submit``: deliveries handed to the publisher's own loop
thread, a future each, against real HTTP receivers on 127.0.0.1 (and a real
fork, for the Celery prefork case)."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future

import pytest

from skyhooks import InvalidDataError, InvalidKeysError, Publisher, RetryPolicy, StoreError, Topic
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


def _submit_in_child(publisher: Publisher, queue: multiprocessing.Queue) -> None:
    report = publisher.submit({"account_id": 42}, "from the child").result(10)
    queue.put((os.getpid(), report.ok, report.message_id))


def test_a_forked_child_gets_a_loop_of_its_own(store, secret):
    """Celery's prefork pool: a publisher made (and used) in the parent, then forked."""
    with Receiver() as r:
        store.add(r.url, {T42}, ttl=60)
        with Publisher(store, secret, retry=FAST) as publisher:
            before = publisher.submit({"account_id": 42}, "parent").result(10)
            fork = multiprocessing.get_context("fork")
            queue: multiprocessing.Queue = fork.Queue()
            child = fork.Process(target=_submit_in_child, args=(publisher, queue))
            child.start()
            pid, ok, child_id = queue.get(timeout=20)
            child.join(20)
            after = publisher.submit({"account_id": 42}, "parent again").result(10)
        assert child.exitcode == 0 and pid != os.getpid() and ok
        assert before.ok and after.ok
        assert len({before.message_id, child_id, after.message_id}) == 3  # the child's ids are its own
        assert r.count == 3


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


# -- notify() from a crowd of threads: the calls beyond the first few go through the loop


def spy_on_submit(publisher: Publisher) -> list[threading.Thread]:
    """Record the thread of every submit() call (notify's hand-overs included)."""
    callers: list[threading.Thread] = []
    submit = publisher.submit

    def recording(keys, data):
        callers.append(threading.current_thread())
        return submit(keys, data)

    publisher.submit = recording  # type: ignore[method-assign]
    return callers


def test_notify_alone_runs_in_its_own_thread(store, secret):
    with Receiver() as r, Publisher(store, secret, retry=FAST) as publisher:
        store.add(r.url, {T42}, ttl=60)
        handed = spy_on_submit(publisher)
        reports = [publisher.notify({"account_id": 42}, i) for i in range(20)]
        assert all(rep.ok for rep in reports) and r.count == 20
        assert handed == [] and publisher._background._thread is None  # no loop thread was started


def test_notify_calls_beyond_the_inline_few_are_handed_to_the_loop_and_travel_together(store, secret):
    from skyhooks._publisher import INLINE_NOTIFIES

    crowd = INLINE_NOTIFIES + 6
    # The first POSTs answer slowly, so the first few notify() calls are still
    # unfinished when the rest of the crowd arrives.
    with Receiver(["sleep:1"] * 2 + [200]) as r, Publisher(store, secret, retry=FAST) as publisher:
        store.add(r.url, {T42}, ttl=60)
        handed = spy_on_submit(publisher)
        reports: dict[int, object] = {}

        def send(i: int) -> None:
            reports[i] = publisher.notify({"account_id": 42}, {"i": i})

        first = [threading.Thread(target=send, args=(i,)) for i in range(INLINE_NOTIFIES)]
        for t in first:
            t.start()
        time.sleep(0.3)
        rest = [threading.Thread(target=send, args=(i,)) for i in range(INLINE_NOTIFIES, crowd)]
        for t in rest:
            t.start()
        for t in first + rest:
            t.join(10)
        assert sorted(reports) == list(range(crowd))
        assert all(rep.ok and rep.delivered == {r.url} and rep.notified == 1 for rep in reports.values())
        assert len({rep.message_id for rep in reports.values()}) == crowd
        # Exactly the late ones went through the loop, each from its own thread...
        assert sorted(t.name for t in handed) == sorted(t.name for t in rest)
        # ...and every message arrived once, the handed-over ones in fewer POSTs.
        sent = [json.loads(q["body"]) for q in r.requests]
        data = [m["data"]["i"] for p in sent for m in p.get("messages", [p])]
        assert sorted(data) == list(range(crowd))
        assert len(r.requests) < crowd
        assert publisher._notifying == (os.getpid(), 0)  # every call counted out


def test_a_handed_over_notify_raises_and_reports_as_an_inline_one(tmp_path, store, secret, monkeypatch):
    monkeypatch.setattr("skyhooks._publisher.INLINE_NOTIFIES", 0)  # every call is "crowded"
    with Receiver([500]) as r, Publisher(store, secret, retry=FAST) as publisher:
        store.add(r.url, {T42}, ttl=60)
        handed = spy_on_submit(publisher)
        report = publisher.notify({"account_id": 42}, 1)
        assert handed and not report.ok and report.failed[r.url].startswith("HTTP 500")
        with pytest.raises(InvalidKeysError):
            publisher.notify({"account id": 42}, 1)
    broken = Publisher(f"sqlite:///{tmp_path}/missing/dir/hooks.db", secret)
    with broken, pytest.raises(StoreError):
        broken.notify({"account_id": 42}, 1)


def test_notify_from_the_loop_thread_runs_inline_rather_than_wait_for_itself(store, secret, monkeypatch):
    monkeypatch.setattr("skyhooks._publisher.INLINE_NOTIFIES", 0)
    with Receiver() as r, Publisher(store, secret, retry=FAST) as publisher:
        store.add(r.url, {T42}, ttl=60)
        done = threading.Event()
        followed: list = []

        def follow_up(_: Future) -> None:  # runs on the loop thread
            followed.append(publisher.notify({"account_id": 42}, "follow-up"))
            done.set()

        publisher.submit({"account_id": 42}, "first").add_done_callback(follow_up)
        assert done.wait(10), "notify from the loop thread waited for the loop"
        assert followed[0].ok and r.count == 2


def test_a_forked_child_does_not_inherit_the_parents_crowd(store, secret):
    with Receiver() as r, Publisher(store, secret, retry=FAST) as publisher:
        store.add(r.url, {T42}, ttl=60)
        handed = spy_on_submit(publisher)
        # As a child forked while its parent's threads were in notify() sees it.
        publisher._notifying = (os.getpid() + 1, 100)
        assert publisher.notify({"account_id": 42}, 1).ok
        assert handed == [] and publisher._notifying == (os.getpid(), 0)
