"""Slow, stuck and throttling receivers, against every publisher.

``publisher`` is the blocking ``skyhooks.Publisher`` in this process, or one of the
async publishers (Tornado, gevent, Twisted) inside an instance program, driven
through its ``/control/notify``. Receivers are scripted HTTP servers
(``tests/support/receiver.py``); the fast targets are real instances whose
callbacks stamp the time they ran.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from skyhooks import Publisher, RetryPolicy, generate_secret
from skyhooks.core.keys import topics_of
from skyhooks.core.stores import open_store
from tests.support.receiver import Receiver, refused_url
from tests.support.recording import RecordingInstance

from .conftest import FRAMEWORKS

PUBLISHERS = ("blocking", *FRAMEWORKS)
FAST = {"fanout": "fast"}


class Setup:
    def __init__(self, store_url: str, secret: str, instances: dict[str, RecordingInstance]):
        self.store_url, self.secret, self.instances = store_url, secret, instances
        self.store = open_store(store_url)

    def notify(self, publisher: str, keys: dict[str, Any], retry: dict[str, float]) -> dict[str, Any]:
        if publisher == "blocking":
            with Publisher(self.store_url, self.secret, retry=RetryPolicy(**retry)) as blocking:
                return blocking.notify(keys, {"from": publisher}).as_dict()
        report = self.instances[publisher].notify(keys, {"from": publisher}, retry=retry)
        assert "error" not in report, report
        return report

    def listening(self, receiver_url: str, keys: dict[str, Any]) -> None:
        self.store.add(receiver_url, topics_of(keys), 60)

    def still_listed(self, url: str) -> bool:
        return any(s.url == url for s in self.store.subscriptions())


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("receivers")
    store_url, secret = f"sqlite:///{directory / 'hooks.db'}", generate_secret()
    instances = {fw: RecordingInstance(fw, store_url, secret, log_dir=directory) for fw in FRAMEWORKS}
    try:
        for instance in instances.values():
            instance.start().register(FAST, "s")
        yield Setup(store_url, secret, instances)
    finally:
        for instance in instances.values():
            instance.kill()


def webhook_ids(receiver: Receiver) -> set[str]:
    return {v for r in receiver.requests for k, v in r["headers"].items() if k.lower() == "webhook-id"}


@pytest.mark.parametrize("publisher", PUBLISHERS)
def test_a_hung_instance_does_not_delay_the_fast_ones(publisher, setup, measure):
    with Receiver(["hang"]) as hung:
        setup.listening(hung.url, FAST)
        try:
            started_wall, started = time.time(), time.monotonic()
            report = setup.notify(publisher, FAST, {"attempts": 1, "timeout": 3.0, "deadline": 5.0})
            elapsed = time.monotonic() - started
        finally:
            setup.store.remove_url(hung.url)
    fast = {i.url: i for i in setup.instances.values()}
    assert set(report["delivered"]) == set(fast), report
    assert report["failed"][hung.url].startswith("timeout"), report
    assert hung.url not in report["pruned"]  # a timeout is not proof of death
    delays = {}
    for instance in fast.values():
        [stamp] = [t for _, mid, t in instance.lines() if mid == report["message_id"]]
        delays[instance.framework] = round(stamp - started_wall, 3)
    assert 2.5 < elapsed < 8, f"notify took {elapsed:.2f}s; the hung receiver should cost its 3 s timeout"
    assert max(delays.values()) < 1.0, f"fast instances waited for the hung one: {delays}"
    measure(publisher=publisher, notify_s=round(elapsed, 2), fast_delivery_s=delays, hung_timeout_s=3.0)


# (script, receiver headers, retry policy, expectations)
CASES: dict[str, tuple[list[Any], dict[str, str], dict[str, float], dict[str, Any]]] = {
    "503-then-200": ([503, 200], {}, {"attempts": 3, "backoff": 0.05}, {"delivered": True, "requests": 2}),
    "503-always": (
        [503],
        {},
        {"attempts": 3, "backoff": 0.05},
        {"delivered": False, "requests": 3, "reason": "HTTP 503 after 3 attempts"},
    ),
    "429-retry-after-1": (
        [429, 200],
        {"Retry-After": "1"},
        {"attempts": 3, "backoff": 0.05},
        {"delivered": True, "requests": 2, "min_s": 0.9},
    ),
    "429-retry-after-past-deadline": (
        [429],
        {"Retry-After": "30"},
        {"attempts": 3, "deadline": 3.0},
        {"delivered": False, "requests": 1, "reason": "deadline reached", "max_s": 2.5},
    ),
    "hang-timeout-retried": (
        ["hang"],
        {},
        {"attempts": 2, "timeout": 1.0, "backoff": 0.05, "deadline": 5.0},
        {"delivered": False, "requests": 2, "reason": "timeout", "min_s": 1.9, "max_s": 5.0},
    ),
    "hang-deadline-caps-retries": (
        ["hang"],
        {},
        {"attempts": 10, "timeout": 1.5, "backoff": 0.05, "deadline": 2.5},
        {"delivered": False, "max_requests": 2, "reason": "timeout", "max_s": 4.0},
    ),
    "404-pruned": ([404], {}, {"attempts": 3}, {"delivered": False, "requests": 1, "pruned": True}),
    "410-pruned": ([410], {}, {"attempts": 3}, {"delivered": False, "requests": 1, "pruned": True}),
    "400-final-kept": ([400], {}, {"attempts": 3}, {"delivered": False, "requests": 1, "pruned": False}),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("publisher", PUBLISHERS)
def test_retry_policy_as_documented(publisher, case, setup, measure):
    script, headers, retry, expect = CASES[case]
    keys = {"receiver": f"{publisher}-{case}"}
    with Receiver(list(script), headers=headers) as receiver:
        setup.listening(receiver.url, keys)
        try:
            started = time.monotonic()
            report = setup.notify(publisher, keys, {"deadline": 10.0, "timeout": 5.0, **retry})
            elapsed = time.monotonic() - started
            # Retries reuse the message id, so an instance would drop the duplicate.
            assert len(webhook_ids(receiver)) == 1
            requests = receiver.count
        finally:
            listed = setup.still_listed(receiver.url)
            setup.store.remove_url(receiver.url)
    assert report["urls"] == [receiver.url]
    assert (receiver.url in report["delivered"]) is expect["delivered"], report
    if "requests" in expect:
        assert requests == expect["requests"], (requests, report)
    assert requests <= expect.get("max_requests", 99)
    if "reason" in expect:
        assert expect["reason"] in report["failed"][receiver.url], report
    pruned = expect.get("pruned", False)
    assert (receiver.url in report["pruned"]) is pruned and listed is not pruned, report
    assert elapsed >= expect.get("min_s", 0.0), f"{elapsed:.2f}s: a retry came too early"
    assert elapsed <= expect.get("max_s", 8.0), f"{elapsed:.2f}s: past the deadline"
    measure(
        publisher=publisher,
        case=case,
        requests=requests,
        elapsed_s=round(elapsed, 3),
        delivered=bool(report["delivered"]),
        reason=report["failed"].get(receiver.url, ""),
        pruned=bool(report["pruned"]),
    )


@pytest.mark.parametrize("publisher", PUBLISHERS)
def test_refused_is_pruned(publisher, setup, measure):
    url = refused_url()
    keys = {"receiver": f"{publisher}-refused"}
    setup.listening(url, keys)
    report = setup.notify(publisher, keys, {"attempts": 2, "backoff": 0.05})
    assert report["pruned"] == [url] and "refused" in report["failed"][url], report
    assert not setup.still_listed(url)
    measure(publisher=publisher, reason=report["failed"][url][:80], pruned=True)
