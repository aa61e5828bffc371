"""Hostile registrations and keys, against real receivers, instances and stores."""

from __future__ import annotations

import time

import pytest

from skyhooks import ConfigurationError, InvalidKeysError, Publisher, RetryPolicy, UrlPolicy
from skyhooks.core.keys import Topic, topics_of
from skyhooks.core.stores import open_store
from skyhooks.tornado import Registry
from tests.support.instances import wait_for
from tests.support.receiver import Receiver

REFUSED = {
    "ftp": "ftp://127.0.0.1:21/skyhooks",
    "file": "file:///etc/passwd",
    "gopher": "gopher://127.0.0.1:70/_",
    "credentials": "http://user:pass@127.0.0.1:8001/skyhooks",
    "user-only": "http://user@127.0.0.1:8001/skyhooks",
    "metadata": "http://169.254.169.254/latest/meta-data/",
    "link-local-v6": "http://[fe80::1]:8001/skyhooks",
    "no-host": "http:///skyhooks",
    "bad-port": "http://127.0.0.1:99999/skyhooks",
}


@pytest.mark.parametrize("kind", list(REFUSED))
def test_registry_refuses_hostile_urls_by_default(kind, sqlite_url, secret):
    with pytest.raises(ConfigurationError, match="refused by URL policy"):
        Registry(url=REFUSED[kind], store=sqlite_url, secret=secret)


def test_url_policy_relaxations_allow_what_they_name(sqlite_url, secret):
    Registry(
        url=REFUSED["metadata"], store=sqlite_url, secret=secret, url_policy=UrlPolicy(allow_link_local=True)
    )
    Registry(
        url=REFUSED["link-local-v6"],
        store=sqlite_url,
        secret=secret,
        url_policy=UrlPolicy(allow_link_local=True),
    )
    Registry(
        url=REFUSED["credentials"],
        store=sqlite_url,
        secret=secret,
        url_policy=UrlPolicy(allow_credentials=True),
    )
    # Relaxing one rule relaxes only that one.
    with pytest.raises(ConfigurationError):
        Registry(
            url=REFUSED["credentials"],
            store=sqlite_url,
            secret=secret,
            url_policy=UrlPolicy(allow_link_local=True),
        )
    with pytest.raises(ConfigurationError):
        Registry(
            url=REFUSED["file"],
            store=sqlite_url,
            secret=secret,
            url_policy=UrlPolicy(allow_link_local=True, allow_credentials=True),
        )


def test_publisher_refuses_hostile_urls_found_in_the_store(sqlite_url, secret, measure):
    """Anything that can write the store could point publishers anywhere: a URL the
    policy refuses is reported failed and never sent. Proven with URLs that would
    reach a listening Receiver if they were sent (credentials, and a second path)."""
    keys = {"account_id": 7}
    store = open_store(sqlite_url)
    with Receiver([200]) as receiver:
        port = receiver.port
        hostile = [
            f"http://admin:secret@127.0.0.1:{port}/hook",
            f"http://admin@127.0.0.1:{port}/other",
            f"ftp://127.0.0.1:{port}/hook",
            "http://169.254.169.254/latest/meta-data/",
        ]
        for url in hostile:
            store.add(url, topics_of(keys), 60)
        store.add(receiver.url, topics_of(keys), 60)
        with Publisher(sqlite_url, secret, retry=RetryPolicy(attempts=1, timeout=2.0)) as publisher:
            report = publisher.notify(keys, {"x": 1})
        assert report.delivered == {receiver.url}, report
        assert set(report.failed) == set(hostile), report
        assert all("refused by URL policy" in reason for reason in report.failed.values())
        assert receiver.count == 1  # only the legitimate URL was POSTed
        assert all("authorization" not in {k.lower() for k in r["headers"]} for r in receiver.requests)
        # The same credentialed URL does reach the receiver once the policy allows it:
        # the refusal above was the policy, not an unreachable URL.
        with Publisher(
            sqlite_url,
            secret,
            retry=RetryPolicy(attempts=1, timeout=2.0),
            url_policy=UrlPolicy(allow_credentials=True),
        ) as relaxed:
            store.remove_url(receiver.url)
            allowed = relaxed.notify(keys, {"x": 2})
        assert hostile[0] in allowed.delivered and hostile[1] in allowed.delivered, allowed
        assert receiver.count == 3
    measure(
        hostile_urls=len(hostile),
        sent_to_hostile=0,
        reported_failed=len(report.failed),
        reached_when_allowed=2,
    )


LONE_SURROGATE = {"account_id": "\ud800"}


def test_publisher_refuses_unencodable_keys_as_invalid(sqlite_url, secret):
    with Publisher(sqlite_url, secret) as publisher, pytest.raises(InvalidKeysError):
        publisher.notify(LONE_SURROGATE, {"x": 1})


def test_one_unencodable_registration_does_not_poison_the_others(launch, sqlite_url, secret, measure):
    instance = launch("tornado", sqlite_url, ttl=3)
    instance.register({"account_id": 1}, "good")
    store = open_store(sqlite_url)
    assert set(store.lookup({Topic("account_id", "1")})) == {instance.url}
    # A key value straight from a browser, say; JSON carries the lone surrogate as "\ud800".
    try:
        instance.register(LONE_SURROGATE, "hostile", wait=False)
    except AssertionError:
        pass  # refusing it outright (400) is a fine answer too
    time.sleep(4.5)  # past the TTL: only renewals keep "account_id=1" alive
    alive = set(store.lookup({Topic("account_id", "1")}))
    measure(
        good_topic_alive_after_ttl=instance.url in alive,
        log_tail=instance.log().strip().splitlines()[-1:] if instance.log() else [],
    )
    assert alive == {instance.url}, "the good topic expired: renewals failed because of the hostile one"
    wait_for(lambda: set(store.lookup({Topic("account_id", "1")})) == {instance.url}, timeout=1)
