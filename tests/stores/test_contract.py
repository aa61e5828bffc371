"""The store contract: one suite, run against every store (``--store`` picks)."""

from __future__ import annotations

import pytest
from zope.interface.verify import verifyObject

from skyhooks import Subscription, Topic, open_store
from skyhooks.core import IHookStore, StoreError

A42 = Topic("account_id", "42")
A7 = Topic("account_id", "7")
U1 = Topic("user_id", "1")
URL1 = "http://127.0.0.1:8001/skyhooks"
URL2 = "http://127.0.0.1:8002/skyhooks"


def test_provides_the_interface(store):
    assert verifyObject(IHookStore, store)


def test_open_store_by_url_gives_the_same_kind(store, store_url):
    opened = open_store(store_url)
    try:
        assert type(opened) is type(store)
        assert verifyObject(IHookStore, opened)
    finally:
        opened.close()


def test_add_then_lookup(store):
    store.add(URL1, {A42, U1}, ttl=60)
    store.add(URL2, {A42}, ttl=60)
    assert store.lookup({A42}) == {URL1: frozenset({A42}), URL2: frozenset({A42})}
    assert store.lookup({A42, U1}) == {URL1: frozenset({A42, U1}), URL2: frozenset({A42})}
    assert store.lookup({A7}) == {}
    assert store.lookup(set()) == {}


def test_values_compare_as_strings_and_names_matter(store):
    store.add(URL1, {Topic("account_id", "42")}, ttl=60)
    assert store.lookup({Topic("user_id", "42")}) == {}
    assert store.lookup({Topic("account_id", "042")}) == {}


def test_add_is_idempotent_and_refreshes(store, clock):
    store.add(URL1, {A42}, ttl=10)
    clock.advance(8)
    store.add(URL1, {A42}, ttl=10)
    clock.advance(8)
    assert store.lookup({A42}) == {URL1: frozenset({A42})}
    assert len(store.subscriptions()) == 1


def test_remove_some_topics(store):
    store.add(URL1, {A42, A7}, ttl=60)
    store.remove(URL1, {A42, U1})  # U1 was never there: ignored
    assert store.lookup({A42, A7}) == {URL1: frozenset({A7})}


def test_remove_url(store):
    store.add(URL1, {A42, A7}, ttl=60)
    store.add(URL2, {A42}, ttl=60)
    assert store.remove_url(URL1) == 2
    assert store.remove_url(URL1) == 0
    assert store.lookup({A42, A7}) == {URL2: frozenset({A42})}


def test_expired_rows_are_invisible_before_purge(store, clock):
    store.add(URL1, {A42}, ttl=10)
    store.add(URL2, {A42}, ttl=30)
    clock.advance(10.5)
    assert store.lookup({A42}) == {URL2: frozenset({A42})}
    assert [s.url for s in store.subscriptions()] == [URL2]


def test_purge_removes_only_expired(store, clock):
    store.add(URL1, {A42, A7}, ttl=10)
    store.add(URL2, {A42}, ttl=30)
    clock.advance(11)
    assert store.purge() == 2
    assert store.purge() == 0
    clock.advance(-11)  # even seen from the past, the purged rows are gone
    assert store.lookup({A42, A7}) == {URL2: frozenset({A42})}


def test_renew_extends_readds_and_drops(store, clock):
    store.add(URL1, {A42, A7}, ttl=10)
    store.add(URL2, {A42}, ttl=10)
    clock.advance(5)
    store.renew(URL1, {A42, U1}, ttl=10)  # keeps A42, re-adds U1, drops A7
    clock.advance(7)  # URL2's subscription has expired; URL1's were renewed
    assert store.lookup({A42, A7, U1}) == {URL1: frozenset({A42, U1})}


def test_renew_at_any_instant_keeps_what_it_renews_and_drops_the_rest(store, clock):
    store.add(URL1, {A42, A7, U1}, ttl=10)
    # Sub-millisecond instants (MongoDB keeps whole milliseconds), a renewal in the
    # same millisecond as the last, and a clock stepped back (NTP) after a longer TTL.
    for now, ttl in [(0.0004, 10.0007), (0.1234567, 10), (0.1234569, 10), (-30.9996, 0.5)]:
        clock.now = 1_800_000_000 + now
        store.renew(URL1, {A42, A7}, ttl=ttl)
        assert store.lookup({A42, A7, U1}) == {URL1: frozenset({A42, A7})}, (now, ttl)
    store.renew(URL1, {A42}, ttl=10)
    assert store.lookup({A42, A7, U1}) == {URL1: frozenset({A42})}


def test_renew_heals_a_wiped_store(store):
    store.add(URL1, {A42}, ttl=10)
    store.remove_url(URL1)
    store.renew(URL1, {A42}, ttl=10)
    assert store.lookup({A42}) == {URL1: frozenset({A42})}


def test_renew_with_no_topics_removes_the_url(store):
    store.add(URL1, {A42}, ttl=10)
    store.renew(URL1, set(), ttl=10)
    assert store.lookup({A42}) == {}


def test_subscriptions_listing(store, clock):
    store.add(URL2, {A42}, ttl=20)
    store.add(URL1, {A7, A42}, ttl=10)
    rows = store.subscriptions()
    assert rows == [
        Subscription(A42, URL1, pytest.approx(clock.now + 10, abs=0.01)),
        Subscription(A7, URL1, pytest.approx(clock.now + 10, abs=0.01)),
        Subscription(A42, URL2, pytest.approx(clock.now + 20, abs=0.01)),
    ]
    assert [(s.url, s.topic) for s in store.subscriptions({A7})] == [(URL1, A7)]
    assert store.subscriptions(set()) == []


def test_many_topics_and_urls(store):
    topics = {Topic("account_id", str(i)) for i in range(40)}
    for port in range(10):
        store.add(f"http://127.0.0.1:{9000 + port}/h", topics, ttl=60)
    found = store.lookup({Topic("account_id", "5"), Topic("account_id", "39")})
    assert len(found) == 10
    assert all(len(matched) == 2 for matched in found.values())


def test_unreachable_store_raises_store_error(store_name, tmp_path):
    if store_name == "memory":
        pytest.skip("the memory store cannot be unreachable")
    if store_name == "sqlite":
        target = tmp_path / "not-a-dir" / "hooks.db"
        broken = open_store(f"sqlite:///{target}")
    elif store_name == "redis":
        broken = open_store("redis://127.0.0.1:9/0")  # port 9 (discard): nobody listens
    elif store_name == "redis-cluster":
        broken = open_store("redis+cluster://127.0.0.1:9")
    else:
        broken = open_store("mongodb://127.0.0.1:9/skyhooks?serverSelectionTimeoutMS=200")
    with pytest.raises(StoreError) as info:
        broken.lookup({A42})
    assert info.value.__cause__ is not None  # the driver's exception is chained, not lost
    broken.close()
