"""SIGTERM an instance while messages flow: a graceful exit loses nothing it acknowledged."""

from __future__ import annotations

import time

import pytest

from skyhooks import Publisher, RetryPolicy
from skyhooks.core.stores import open_store

from .conftest import FRAMEWORKS
from .streams import Stream

KEYS = {"account_id": 42}
POLICY = RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.2, deadline=3.0, timeout=2.0)


@pytest.mark.parametrize("victim", FRAMEWORKS)
def test_sigterm_under_load(victim, launch, sqlite_url, secret, measure):
    instances = {fw: launch(fw, sqlite_url) for fw in FRAMEWORKS}
    for instance in instances.values():
        instance.register(KEYS, "s")
    leaving = instances[victim]
    live = [i for fw, i in instances.items() if fw != victim]
    store = open_store(sqlite_url)
    with Publisher(sqlite_url, secret, retry=POLICY) as publisher:
        stream = Stream(publisher.notify, lambda seq: KEYS, count=900, threads=4, pause=0.005).start()
        stream.wait_done(200, timeout=60)
        signalled = time.monotonic()
        status = leaving.terminate(timeout=20)
        exited = time.monotonic()
        listed_after_exit = any(s.url == leaving.url for s in store.subscriptions())
        stream.join(timeout=120)
    sent = stream.reports()
    ids = {s.report.message_id for s in sent}
    assert status == 0, leaving.log()

    for instance in live:
        counts = instance.counts("s")
        assert set(counts) == ids and max(counts.values()) == 1, f"{instance.framework} lost or doubled"
    # Everything the leaving instance acknowledged, its callback ran: nothing in flight was dropped.
    acked = {s.report.message_id for s in sent if leaving.url in s.report.delivered}
    recorded = leaving.counts("s")
    assert acked <= set(recorded), f"{len(acked - set(recorded))} acknowledged messages never dispatched"
    assert max(recorded.values()) == 1
    # Anything it did not acknowledge is reported failed, never silently dropped.
    for s in sent:
        if leaving.url in s.report.urls and leaving.url not in s.report.delivered:
            assert leaving.url in s.report.failed
    # Its URL left the store (by its stop, or pruned as refused), and it is no longer targeted.
    assert not listed_after_exit or all(s.url != leaving.url for s in store.subscriptions())
    later = [s for s in sent if s.started > exited + 0.5]
    assert later, "the stream ended before the instance exited"
    assert all(leaving.url not in s.report.urls for s in later)
    failed = [s for s in sent if leaving.url in s.report.failed]
    pruned = [s for s in sent if leaving.url in s.report.pruned]
    measure(
        victim=victim,
        sent=len(sent),
        acked_by_leaving=len(acked),
        dispatched_by_leaving=len(recorded),
        acked_not_dispatched=0,
        reported_failed_to_leaving=len(failed),
        pruned_by_publisher=len(pruned),
        listed_right_after_exit=listed_after_exit,
        sigterm_to_exit_s=round(exited - signalled, 2),
        exit_status=status,
        lost_at_survivors=0,
    )
