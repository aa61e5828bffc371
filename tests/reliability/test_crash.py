"""An instance killed with SIGKILL in the middle of a stream of messages."""

from __future__ import annotations

import time

import pytest

from skyhooks import Publisher, RetryPolicy

from .conftest import FRAMEWORKS
from .streams import Stream

KEYS = {"account_id": 42}
POLICY = RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.2, deadline=3.0, timeout=2.0)


@pytest.mark.parametrize("victim", FRAMEWORKS)
def test_sigkill_mid_stream_is_reported_pruned_and_heals(victim, launch, sqlite_url, secret, measure):
    instances = {fw: launch(fw, sqlite_url) for fw in FRAMEWORKS}
    for instance in instances.values():
        instance.register(KEYS, "s")
    dead = instances[victim]
    live = [i for fw, i in instances.items() if fw != victim]

    with Publisher(sqlite_url, secret, retry=POLICY) as publisher:
        stream = Stream(publisher.notify, lambda seq: KEYS, count=600, threads=4).start()
        stream.wait_done(200, timeout=60)
        dead.process.kill()
        dead.process.wait()
        killed = time.monotonic()
        stream.join(timeout=120)
        sent = stream.reports()
        ids = {s.report.message_id for s in sent}

        # Nothing lost at the survivors, nothing doubled: count by message id.
        for instance in live:
            counts = instance.counts("s")
            assert set(counts) == ids, f"{instance.framework} missed {len(ids - set(counts))} messages"
            assert max(counts.values()) == 1
            assert all(instance.url in s.report.delivered for s in sent)

        # The dead URL: every message sent after the kill reports it failed, never delivered.
        after = [s for s in sent if s.started > killed]
        assert after, "the kill came too late to test anything"
        assert all(dead.url not in s.report.delivered for s in after)
        failed = [s for s in sent if dead.url in s.report.failed]
        assert failed, "no message reported the dead instance as failed"
        assert all(dead.url in s.report.urls for s in failed)
        # Messages acknowledged by the victim were recorded by its callback before it died
        # (allowing the one an instance may acknowledge just before SIGKILL lands).
        acked = {s.report.message_id for s in sent if dead.url in s.report.delivered}
        unrecorded = acked - set(dead.counts("s"))
        assert len(unrecorded) <= 1, f"{len(unrecorded)} acknowledged messages never reached the callback"

        # Pruned (connection refused), then no longer targeted.
        pruning = [s for s in sent if dead.url in s.report.pruned]
        assert pruning, (
            f"dead URL never pruned; reasons: {sorted({s.report.failed[dead.url] for s in failed})}"
        )
        assert all("refused" in s.report.failed[dead.url] for s in pruning)
        first_pruned = min(s.finished for s in pruning)
        later = [s for s in sent if s.started > first_pruned]
        assert later and all(dead.url not in s.report.urls for s in later)
        prune_delay = first_pruned - killed

        # A new process of the same framework registers and receives again.
        reborn = launch(victim, sqlite_url)
        reborn.register(KEYS, "s")
        again = Stream(publisher.notify, lambda seq: KEYS, count=100, threads=4).start()
        again.join(timeout=60)
        again_ids = {s.report.message_id for s in again.reports()}
        for instance in [*live, reborn]:
            counts = instance.counts("s")
            assert again_ids <= set(counts), f"{instance.framework} missed messages after the restart"
            assert max(counts.values()) == 1
        assert all(s.report.failed == {} for s in again.reports())

    measure(
        victim=victim,
        sent=len(sent),
        sent_after_kill=len(after),
        delivered_per_survivor=len(ids),
        lost_at_survivors=0,
        reported_failed_to_dead=len(failed),
        acked_by_dead=len(acked),
        acked_unrecorded=len(unrecorded),
        kill_to_prune_s=round(prune_delay, 3),
        after_restart_sent=len(again_ids),
        after_restart_delivered=len(again_ids),
    )
