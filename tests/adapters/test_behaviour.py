"""The adapter behaviour suite: the same scenarios for every framework.

Each test starts the framework's instance program (``tests/adapters/instances``)
in its own process and drives it over real sockets: signed webhooks to its
handler, and its control endpoints for registering callbacks, reading what they
received, measuring loop lag and publishing with the adapter's async Publisher.
``--framework`` picks the adapter(s); see ``conftest.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from skyhooks import Topic, open_store
from skyhooks.core.wire import Signer
from tests.support.instances import wait_for
from tests.support.mongo import MongoServer, external_uri, fresh_database, mongoeco_python
from tests.support.receiver import Receiver, refused_url

A42 = {"account_id": 42}
A7 = {"account_id": 7}


def error_of(status_and_payload):
    status, payload = status_and_payload
    assert isinstance(payload, dict), payload
    assert payload["status"] == "error" and payload["error"], payload
    return status


# -- dispatch ---------------------------------------------------------------------


def test_signed_post_reaches_exactly_the_right_callbacks(instance):
    instance.register(A42, "on42")
    instance.register(A7, "on7")
    instance.register({"account_id": 42, "user_id": 1}, "on42_or_user1")
    status, reply = instance.send({"account_id": "42", "user_id": 1}, {"progress": 50})
    assert (status, reply) == (200, {"status": "ok", "notified": 2})
    received = instance.received()
    assert [m["data"] for m in received["on42"]] == [{"progress": 50}]
    assert len(received["on42_or_user1"]) == 1  # two matching topics, called once
    assert "on7" not in received
    assert received["on42"][0]["keys"] == {"account_id": "42", "user_id": 1}  # as the publisher sent them


def test_nobody_listening_answers_zero(instance):
    assert instance.send(A7, None) == (200, {"status": "ok", "notified": 0})


def test_a_raising_callback_is_logged_and_the_others_run(instance):
    instance.register(A42, "bad", kind="raise")
    instance.register(A42, "good")
    status, reply = instance.send(A42, 1)
    assert status == 200 and reply["notified"] == 2
    assert len(instance.received()["good"]) == 1
    assert "raises on purpose" in wait_for(lambda: "raises on purpose" in instance.log() and instance.log())
    assert instance.send(A42, 2)[0] == 200  # still serving
    assert len(instance.received()["good"]) == 2


def test_async_callbacks_run(instance):
    instance.register(A42, "coro", kind="async")
    assert instance.send(A42, {"x": 1}) == (200, {"status": "ok", "notified": 1})
    got = wait_for(lambda: instance.received().get("coro"), what="async callback")
    assert got[0]["data"] == {"x": 1}


def test_duplicates_are_acknowledged_not_redispatched(instance):
    instance.register(A42, "cb")
    message = Signer(instance.secret).build(A42, {"n": 1})
    first = instance.post(message.body, dict(message.headers))
    second = instance.post(message.body, dict(message.headers))
    assert first == (200, {"status": "ok", "notified": 1})
    assert second == (200, {"status": "ok", "notified": 0, "duplicate": True})
    assert len(instance.received()["cb"]) == 1


# -- bad input ----------------------------------------------------------------------


def _signed(secret, body: bytes, **changes):
    """*body* signed as any Standard Webhooks sender would (HMAC-SHA256 over the raw bytes),
    independently of skyhooks' Signer."""
    message = Signer(secret).build(A42, None)
    timestamp = str(int(changes.pop("timestamp", time.time())))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message.id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    headers = dict(message.headers)
    headers["webhook-timestamp"] = timestamp
    headers["webhook-signature"] = "v1," + base64.b64encode(mac).decode()
    headers.update(changes)
    return body, headers


GOOD_BODY = json.dumps({"keys": A42, "data": "x"}).encode()


def bad_requests(secret, other_secret):
    """(name, method, body, headers, expected status)"""
    good, headers = _signed(secret, GOOD_BODY)
    unsigned = {"content-type": "application/json"}
    yield "unsigned", "POST", good, unsigned, 401
    yield "signature without comma", "POST", good, {**headers, "webhook-signature": "v1"}, 401
    yield "signature not base64", "POST", good, {**headers, "webhook-signature": "v1,%%%not-base64"}, 401
    yield "signature of other bytes", "POST", good, {**headers, "webhook-signature": "v1,AAAA"}, 401
    yield "timestamp not a number", "POST", good, {**headers, "webhook-timestamp": "soon"}, 401
    yield "stale timestamp", "POST", *_signed(secret, GOOD_BODY, timestamp=time.time() - 600), 401
    yield "future timestamp", "POST", *_signed(secret, GOOD_BODY, timestamp=time.time() + 600), 401
    yield "wrong secret", "POST", *_signed(other_secret, GOOD_BODY), 401
    yield "malformed JSON", "POST", *_signed(secret, b'{"keys": {"account_id": 42'), 400
    yield "JSON not an object", "POST", *_signed(secret, b"[1, 2]"), 400
    yield "NaN is not JSON", "POST", *_signed(secret, b'{"keys": {"account_id": 42}, "data": NaN}'), 400
    yield (
        "deeply nested",
        "POST",
        *_signed(secret, b'{"keys": {"a": 1}, "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        400,
    )
    yield "no keys", "POST", *_signed(secret, b'{"data": 1}'), 400
    yield "bad key name", "POST", *_signed(secret, b'{"keys": {"no spaces": 1}}'), 400
    yield "bool key value", "POST", *_signed(secret, b'{"keys": {"account_id": true}}'), 400
    yield "nested key value", "POST", *_signed(secret, b'{"keys": {"account_id": [42]}}'), 400
    yield "empty keys", "POST", *_signed(secret, b'{"keys": {}}'), 400
    not_utf8 = b'{"keys": {"account_id": 42}, "data": "\xff\xfe"}'
    yield "not UTF-8", "POST", *_signed(secret, not_utf8), 400
    yield (
        "oversized body",
        "POST",
        *_signed(secret, b'{"keys": {"a": 1}, "data": "' + b"x" * (1024 * 1024) + b'"}'),
        413,
    )
    yield "GET", "GET", b"", headers, 405
    yield "PUT", "PUT", good, headers, 405
    yield "text/plain", "POST", good, {**headers, "content-type": "text/plain"}, 415
    yield "no content type", "POST", good, {k: v for k, v in headers.items() if k != "content-type"}, 415


def test_every_bad_input_gets_its_4xx_and_the_instance_still_works(instance):
    from skyhooks import generate_secret

    instance.register(A42, "cb")
    for name, method, body, headers, expected in bad_requests(instance.secret, generate_secret()):
        result = instance.post(body, headers, method=method)
        assert result[0] == expected, (name, result)
        assert error_of(result) == expected, name
    assert "cb" not in instance.received()  # nothing was dispatched
    assert "Traceback" not in instance.log()
    assert instance.send(A42, "fine") == (200, {"status": "ok", "notified": 1})


def test_oversized_body_is_refused_by_content_length(instance):
    # a declared length over the limit is refused without sending the body
    body, headers = _signed(instance.secret, GOOD_BODY)
    headers["content-length"] = str(10 * 1024 * 1024)
    import socket

    with socket.create_connection(("127.0.0.1", instance.port), timeout=10) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"POST /skyhooks HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body)
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


# -- keeping the store in step -----------------------------------------------------------


def test_register_and_unregister_keep_the_store_in_step(instance, sqlite_url):
    store = open_store(sqlite_url)
    topic = Topic("account_id", "42")
    instance.register(A42, "one")
    assert store.lookup({topic}) == {instance.url: frozenset({topic})}
    instance.register(A42, "two")
    instance.unregister(A42, "one")
    assert store.lookup({topic}) == {instance.url: frozenset({topic})}  # "two" still listens
    instance.unregister(A42, "two")
    assert store.lookup({topic}) == {}
    assert instance.topics() == []
    store.close()


def test_renewal_keeps_subscriptions_alive_past_the_ttl(start_instance, sqlite_url):
    instance = start_instance(sqlite_url, ttl=1.5)
    store = open_store(sqlite_url)
    instance.register(A42, "cb")
    time.sleep(4.5)  # three TTLs
    assert store.lookup({Topic("account_id", "42")}) == {instance.url: frozenset({Topic("account_id", "42")})}
    store.close()


def test_stop_removes_the_url(instance, sqlite_url):
    store = open_store(sqlite_url)
    instance.register(A42, "cb")
    instance.register(A7, "cb")
    assert instance.control("stop") == {"removed": True}
    assert store.lookup({Topic("account_id", "42"), Topic("account_id", "7")}) == {}
    store.close()


def test_sigterm_stops_cleanly_and_removes_the_url(instance, sqlite_url):
    store = open_store(sqlite_url)
    instance.register(A42, "cb")
    assert instance.terminate() == 0
    assert store.lookup({Topic("account_id", "42")}) == {}
    store.close()


# -- the store goes away and comes back -------------------------------------------------------


@pytest.fixture
def private_mongo():
    """A MongoDB-wire server of this test's own, so it can be stopped and restarted empty."""
    python = mongoeco_python()
    if python is None:
        if external_uri("x"):  # a real mongod cannot be stopped and restarted empty from here
            pytest.skip("store-outage scenarios need a server they can stop: set SKYHOOKS_MONGOECO_PYTHON")
        pytest.fail("no mongoeco interpreter: run through scripts/test")
    server = MongoServer(python)
    server.start()
    yield server
    server.stop()


def test_store_outage_never_blocks_and_heals(start_instance, private_mongo):
    url = private_mongo.url(fresh_database())
    instance = start_instance(url, ttl=3.0)
    instance.register(A42, "before")
    store = open_store(url)
    t42, t7 = Topic("account_id", "42"), Topic("account_id", "7")
    assert store.lookup({t42}) == {instance.url: frozenset({t42})}

    private_mongo.stop()
    instance.control("reset")
    started = time.monotonic()
    instance.register(A7, "during", wait=False)  # local at once, persisted later
    assert time.monotonic() - started < 1.0
    assert instance.send(A7, "local")[1]["notified"] == 1  # dispatch needs no store
    assert instance.send(A42, "local")[1]["notified"] == 1
    time.sleep(3.0)  # renewals and retries fail meanwhile
    lag = instance.lag()
    print(f"{instance.framework} loop lag during the store outage: {lag}")
    assert lag["samples"] > 50
    assert lag["max_lag_ms"] < 250, lag  # a blocked loop would show seconds (server selection timeout)

    private_mongo.start()  # same port, empty: the store lost everything
    healed = wait_for(
        lambda: store.lookup({t42, t7}) == {instance.url: frozenset({t42, t7})},
        timeout=20,
        interval=0.25,
        what="the store to heal",
    )
    assert healed
    assert instance.send(A7, "after")[1]["notified"] == 1
    store.close()


# -- the adapter's async Publisher ---------------------------------------------------------------


def test_publisher_fans_out_and_reports(start_instance, sqlite_url):
    a = start_instance(sqlite_url)
    b = start_instance(sqlite_url)
    a.register(A42, "a1")
    a.register(A42, "a2")
    b.register(A42, "b1")
    b.register(A7, "b7")
    report = a.notify(A42, {"done": True})
    assert set(report["urls"]) == {a.url, b.url}
    assert set(report["delivered"]) == {a.url, b.url}
    assert report["failed"] == {} and report["pruned"] == []
    assert report["notified"] == 3
    assert report["message_id"].startswith("msg_")
    assert len(a.received()["a1"]) == len(b.received()["b1"]) == 1
    assert "b7" not in b.received()


def test_publisher_retries_prunes_and_drops(start_instance, sqlite_url):
    instance = start_instance(sqlite_url)
    store = open_store(sqlite_url)
    topic = Topic("account_id", "42")
    dead = refused_url()
    with (
        Receiver(script=[503, 200]) as flaky,
        Receiver(notified=0) as unused,
        Receiver(script=[400]) as rejecting,
    ):
        for url in (dead, flaky.url, unused.url, rejecting.url):
            store.add(url, {topic}, ttl=60)
        report = instance.notify(
            A42, "x", retry={"attempts": 3, "backoff": 0.05, "deadline": 5, "timeout": 2}
        )
        assert set(report["urls"]) == {dead, flaky.url, unused.url, rejecting.url}
        assert set(report["delivered"]) == {flaky.url, unused.url}
        assert flaky.count == 2  # 503, then delivered on the retry
        assert rejecting.count == 1  # 400 is final
        assert report["failed"][dead].startswith("refused") and "3 attempts" in report["failed"][dead]
        assert report["failed"][rejecting.url].startswith("HTTP 400")
        assert report["pruned"] == [dead]
        assert report["notified"] == 1
        assert set(store.lookup({topic})) == {flaky.url, rejecting.url}  # dead pruned, unused dropped
    store.close()


def test_publisher_times_out_a_hanging_receiver(start_instance, sqlite_url):
    instance = start_instance(sqlite_url)
    store = open_store(sqlite_url)
    with Receiver(script=["hang"]) as hanging:
        store.add(hanging.url, {Topic("account_id", "42")}, ttl=60)
        started = time.monotonic()
        report = instance.notify(
            A42, "x", retry={"attempts": 2, "backoff": 0.05, "deadline": 3, "timeout": 0.5}
        )
        assert time.monotonic() - started < 5
        assert report["delivered"] == [] and report["pruned"] == []
        assert report["failed"][hanging.url].startswith("timeout")
    store.close()


def test_publisher_raises_store_error_when_the_store_is_down(start_instance, private_mongo):
    url = private_mongo.url(fresh_database())
    instance = start_instance(url)
    private_mongo.stop()
    result = instance.notify(A42, "x")
    assert result["error"].startswith("StoreError"), result


def test_batches_from_the_blocking_publisher(instance, sqlite_url):
    from skyhooks import Publisher

    instance.register(A42, "cb42")
    instance.register(A7, "cb7")
    with Publisher(sqlite_url, instance.secret) as publisher:
        reports = publisher.notify_many([(A42, 1), (A7, 2), (A42, 3), ({"account_id": 5}, 4)])
    assert [r.notified for r in reports] == [1, 1, 1, 0]
    assert [r.delivered for r in reports[:3]] == [frozenset({instance.url})] * 3
    assert reports[3].urls == frozenset()  # nobody listens for account 5
    received = instance.received()
    assert [m["data"] for m in received["cb42"]] == [1, 3]
    assert [m["data"] for m in received["cb7"]] == [2]
    assert received["cb42"][0]["id"] == reports[0].message_id
