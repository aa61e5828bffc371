"""The blocking publisher against real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest
import standardwebhooks

from skyhooks import InvalidKeysError, Publisher, RetryPolicy, StoreError, Topic
from tests.support.receiver import Receiver, refused_url

T42 = Topic("account_id", "42")
FAST = RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.2, deadline=5, timeout=2)


@pytest.fixture
def store(sqlite_store):
    return sqlite_store


@pytest.fixture
def publisher(store, secret):
    with Publisher(store, secret, retry=FAST) as publisher:
        yield publisher


def test_fans_out_concurrently_with_verifiable_signatures(publisher, store, secret):
    with Receiver(["sleep:0.5"]) as a, Receiver(["sleep:0.5"]) as b, Receiver(["sleep:0.5"]) as c:
        for r in (a, b, c):
            store.add(r.url, {T42}, ttl=60)
        started = time.monotonic()
        report = publisher.notify({"account_id": 42}, {"progress": 100})
        elapsed = time.monotonic() - started
        assert elapsed < 1.4, elapsed  # three 0.5 s receivers, in parallel
        assert report.urls == report.delivered == {a.url, b.url, c.url}
        assert report.failed == {} and report.pruned == frozenset() and report.notified == 3
        assert report.ok
        ids = set()
        for r in (a, b, c):
            request = r.requests[0]
            headers = {k.lower(): v for k, v in request["headers"].items()}
            payload = standardwebhooks.Webhook(secret).verify(request["body"], headers)
            assert payload == {"keys": {"account_id": 42}, "data": {"progress": 100}}
            ids.add(headers["webhook-id"])
        assert ids == {report.message_id}  # one id for the message, on every URL


def test_nobody_listening(publisher):
    report = publisher.notify({"account_id": 42}, None)
    assert report.urls == frozenset() and report.notified == 0 and report.ok


def test_retries_5xx_then_delivers(publisher, store):
    with Receiver([500, 502, 200]) as flaky:
        store.add(flaky.url, {T42}, ttl=60)
        report = publisher.notify({"account_id": 42}, 1)
        assert report.delivered == {flaky.url} and flaky.count == 3
        ids = {r["headers"]["webhook-id"] for r in flaky.requests}
        assert len(ids) == 1  # the same webhook-id on every retry


def test_retry_after_is_honoured(publisher, store):
    with Receiver([429, 200], headers={"Retry-After": "0.3"}) as limited:
        store.add(limited.url, {T42}, ttl=60)
        started = time.monotonic()
        report = publisher.notify({"account_id": 42}, 1)
        assert report.delivered == {limited.url}
        assert time.monotonic() - started >= 0.3


def test_gives_up_within_the_deadline_and_reports(store, secret):
    policy = RetryPolicy(attempts=50, backoff=0.2, max_backoff=0.5, deadline=1.0, timeout=1)
    with Publisher(store, secret, retry=policy) as publisher, Receiver([503]) as down:
        store.add(down.url, {T42}, ttl=60)
        started = time.monotonic()
        report = publisher.notify({"account_id": 42}, 1)
        assert time.monotonic() - started < 1.5
        assert report.failed[down.url].startswith("HTTP 503")
        assert report.pruned == frozenset()  # 5xx is not "gone"
        assert store.lookup({T42}) == {down.url: frozenset({T42})}


def test_refused_url_is_retried_then_pruned(publisher, store):
    dead = refused_url()
    with Receiver() as alive:
        store.add(dead, {T42}, ttl=60)
        store.add(alive.url, {T42}, ttl=60)
        report = publisher.notify({"account_id": 42}, 1)
        assert report.delivered == {alive.url}
        assert report.failed[dead].startswith("refused") and "after 3 attempts" in report.failed[dead]
        assert report.pruned == {dead}
        assert store.lookup({T42}) == {alive.url: frozenset({T42})}


@pytest.mark.parametrize("status", [404, 410])
def test_gone_url_is_pruned(publisher, store, status):
    with Receiver([status]) as gone:
        store.add(gone.url, {T42}, ttl=60)
        report = publisher.notify({"account_id": 42}, 1)
        assert gone.count == 1 and report.pruned == {gone.url}
        assert store.lookup({T42}) == {}


def test_notified_zero_drops_the_topic_but_keeps_the_url(publisher, store):
    other = Topic("account_id", "7")
    with Receiver(notified=0) as idle:
        store.add(idle.url, {T42, other}, ttl=60)
        report = publisher.notify({"account_id": 42}, 1)
        assert report.delivered == {idle.url} and report.notified == 0 and report.pruned == frozenset()
        assert store.lookup({T42, other}) == {idle.url: frozenset({other})}


def test_hanging_receiver_times_out_and_is_reported(store, secret):
    policy = RetryPolicy(attempts=2, backoff=0.05, deadline=3, timeout=0.4)
    with (
        Publisher(store, secret, retry=policy) as publisher,
        Receiver(["hang"]) as hanging,
        Receiver() as fine,
    ):
        store.add(hanging.url, {T42}, ttl=60)
        store.add(fine.url, {T42}, ttl=60)
        started = time.monotonic()
        report = publisher.notify({"account_id": 42}, 1)
        assert time.monotonic() - started < 2
        assert report.delivered == {fine.url}
        assert report.failed[hanging.url].startswith("timeout")
        assert hanging.url not in report.pruned


def test_store_down_raises_before_sending(tmp_path, secret):
    with (
        Publisher(f"sqlite:///{tmp_path}/missing/dir/hooks.db", secret) as publisher,
        pytest.raises(StoreError),
    ):
        publisher.notify({"account_id": 42}, 1)


def test_bad_input_raises_before_anything(publisher, store):
    with Receiver() as r:
        store.add(r.url, {T42}, ttl=60)
        with pytest.raises(InvalidKeysError):
            publisher.notify({"account id": 42}, 1)
        with pytest.raises(ValueError):
            publisher.notify({"account_id": 42}, {"not json": {1, 2}})
        assert r.count == 0


def test_url_policy_refuses_link_local_targets(publisher, store):
    store.add("http://169.254.169.254/latest/meta-data", {T42}, ttl=60)
    report = publisher.notify({"account_id": 42}, 1)
    assert "link-local" in report.failed["http://169.254.169.254/latest/meta-data"]
    assert report.delivered == frozenset()


def test_notify_many_routes_batches_and_reports_each_message(publisher, store, secret):
    t7 = Topic("account_id", "7")
    with Receiver() as only42, Receiver() as only7, Receiver() as both:
        store.add(only42.url, {T42}, ttl=60)
        store.add(only7.url, {t7}, ttl=60)
        store.add(both.url, {T42, t7}, ttl=60)
        reports = publisher.notify_many(
            [({"account_id": 42}, "a"), ({"account_id": 7}, "b"), ({"account_id": 42}, "c")]
        )
        assert [r.urls for r in reports] == [
            {only42.url, both.url},
            {only7.url, both.url},
            {only42.url, both.url},
        ]
        assert all(r.ok for r in reports)
        assert len({r.message_id for r in reports}) == 3
        # one POST per instance: a batch where it gets several messages, v1 where it gets one
        assert only42.count == only7.count == both.count == 1
        batch42 = json.loads(only42.requests[0]["body"])
        assert [(m["id"], m["data"]) for m in batch42["messages"]] == [
            (reports[0].message_id, "a"),
            (reports[2].message_id, "c"),
        ]
        assert json.loads(only7.requests[0]["body"]) == {"keys": {"account_id": 7}, "data": "b"}
        assert only7.requests[0]["headers"]["webhook-id"] == reports[1].message_id
        assert [m["data"] for m in json.loads(both.requests[0]["body"])["messages"]] == ["a", "b", "c"]
        for r in (only42, only7, both):
            headers = {k.lower(): v for k, v in r.requests[0]["headers"].items()}
            standardwebhooks.Webhook(secret).verify(r.requests[0]["body"], headers)


def test_notify_many_with_a_dead_instance_fails_every_message_it_had(publisher, store):
    dead = refused_url()
    with Receiver() as alive:
        store.add(dead, {T42}, ttl=60)
        store.add(alive.url, {T42}, ttl=60)
        reports = publisher.notify_many([({"account_id": 42}, i) for i in range(5)])
        assert all(r.delivered == {alive.url} and dead in r.failed and r.pruned == {dead} for r in reports)
        assert len(json.loads(alive.requests[0]["body"])["messages"]) == 5


def test_notify_many_refuses_bad_input_before_anything(publisher):
    with pytest.raises(InvalidKeysError):
        publisher.notify_many([({"account_id": 1}, 1), ({"bad key": 1}, 2)])
    with pytest.raises(ValueError, match="nothing to publish"):
        publisher.notify_many([])


def test_notify_many_splits_batches_a_receiver_would_refuse(publisher, store):
    from skyhooks.core.wire import MAX_BATCH

    with Receiver() as r:
        store.add(r.url, {T42}, ttl=60)
        reports = publisher.notify_many([({"account_id": 42}, i) for i in range(2 * MAX_BATCH + 5)])
        assert all(report.delivered == {r.url} for report in reports)
        sizes = sorted(len(json.loads(req["body"])["messages"]) for req in r.requests)
        assert sizes == [5, MAX_BATCH, MAX_BATCH]
    with Receiver() as big:
        store.add(big.url, {T42}, ttl=60)
        blob = "x" * 300_000  # three of these exceed what one request should carry
        reports = publisher.notify_many([({"account_id": 42}, blob)] * 3)
        assert all(report.delivered >= {big.url} for report in reports)
        assert all(len(req["body"]) < 1024 * 1024 for req in big.requests)
        assert big.count >= 2


def test_lookup_cache_is_opt_in_and_forgets_on_prune(store, secret):
    with Receiver() as first, Receiver() as second:
        store.add(first.url, {T42}, ttl=60)
        with Publisher(store, secret, retry=FAST) as uncached:
            uncached.notify({"account_id": 42}, 1)
            store.add(second.url, {T42}, ttl=60)
            assert uncached.notify({"account_id": 42}, 2).urls == {first.url, second.url}  # seen at once
        store.remove_url(second.url)
        with Publisher(store, secret, retry=FAST, lookup_cache=30) as cached:
            assert cached.notify({"account_id": 42}, 3).urls == {first.url}
            store.add(second.url, {T42}, ttl=60)
            # the documented trade-off: a listener newer than the cached answer waits for it to expire
            assert cached.notify({"account_id": 42}, 4).urls == {first.url}
            dead = refused_url()
            store.add(dead, {T42}, ttl=60)
            cached._targets._forget()  # as if the TTL had passed
            report = cached.notify({"account_id": 42}, 5)
            assert report.pruned == {dead}
            # pruning forgot the cache: the next message looks up afresh and skips the dead URL
            assert cached.notify({"account_id": 42}, 6).urls == {first.url, second.url}
    with pytest.raises(ValueError, match="lookup_cache"):
        Publisher(store, secret, lookup_cache=-1)
