"""``skyhooks.Publisher.submit``: deliveries handed to the publisher's own worker
threads, a future each, against real HTTP receivers on 127.0.0.1 (and a real
fork, for the Celery prefork case)."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import threading
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


def count_lookups(store) -> list:
    """The topics of every ``store.lookup`` from now on (the store still answers)."""
    lookups = []
    real = store.lookup

    def counting(topics):
        lookups.append(topics)
        return real(topics)

    store.lookup = counting
    return lookups


def test_what_queues_behind_a_notification_shares_one_lookup(store, secret):
    """Submissions made while deliveries run leave as one notification: far fewer store
    lookups than messages (the lanes alone would look up once per message)."""
    lookups = count_lookups(store)
    with Receiver(["sleep:0.1", 200]) as r:
        store.add(r.url, {T42}, ttl=60)
        with Publisher(store, secret, retry=FAST) as publisher:
            futures = [publisher.submit({"account_id": 42}, {"i": i}) for i in range(200)]
            reports = [f.result(10) for f in futures]
    assert all(rep.delivered == {r.url} for rep in reports)
    assert 1 <= len(lookups) <= 20, len(lookups)


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
    # What the child inherited of the parent's connection pool is garbage here;
    # collecting it closes the child's copies only, never the parent's connection.
    gc.collect()
    queue.put((os.getpid(), report.ok, report.message_id))


def test_a_forked_child_submits_with_threads_and_connections_of_its_own(store, secret):
    """Celery's prefork pool: a publisher made (and used) in the parent, then
    forked. The child's submission runs in worker threads of its own (the
    parent's do not exist there) over a connection of its own, and the parent
    goes on over its kept-alive connection."""
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
        assert r.count == 3  # no POST sent twice
        parent, child_peer, parent_again = (request["peer"] for request in r.requests)
        assert parent_again == parent != child_peer  # on the parent's kept connection


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
        assert sum(carried(q) for q in r.requests) == 100


@pytest.mark.parametrize("instances", [1, 2], ids=["one-instance", "fan-out"])
def test_a_script_that_ends_without_close_still_delivers_what_it_submitted(
    sqlite_url, sqlite_store, secret, instances
):
    """The interpreter's exit waits for the worker threads to finish what was
    submitted, fan-out to several instances included."""
    import subprocess
    import sys
    import textwrap

    with Receiver(["sleep:0.3", 200]) as r, Receiver(["sleep:0.3", 200]) as other:
        for receiver in (r, other)[:instances]:
            sqlite_store.add(receiver.url, {T42}, ttl=60)
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
        for receiver in (r, other)[:instances]:
            assert sum(carried(q) for q in receiver.requests) == 20


def test_a_crowd_of_notify_calls_travels_together(store, secret):
    """Past the first few notify calls at once, further calls join the backlog: far fewer
    store lookups than messages, and every caller gets its own report."""
    lookups = count_lookups(store)
    reports = []
    with Receiver(["sleep:0.05", 200]) as r:
        store.add(r.url, {T42}, ttl=60)
        with Publisher(store, secret, retry=FAST) as publisher:

            def caller(n: int) -> None:
                for i in range(10):
                    reports.append(publisher.notify({"account_id": 42}, {"caller": n, "i": i}))

            threads = [threading.Thread(target=caller, args=(n,)) for n in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
    assert len(reports) == 160 and all(rep.delivered == {r.url} for rep in reports)
    assert len({rep.message_id for rep in reports}) == 160
    assert len(lookups) < 100, len(lookups)
