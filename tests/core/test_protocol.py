from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import standardwebhooks
from hypothesis import given, settings
from hypothesis import strategies as st

from skyhooks import ConfigurationError, InvalidDataError, InvalidKeysError, generate_secret
from skyhooks.core import RequestError
from skyhooks.core.wire import RecentIds, Signer, Verifier, parse_reply


@pytest.fixture
def verifier(secret):
    return Verifier(secret)


def test_round_trip(secret, verifier):
    message = Signer(secret).build({"account_id": 42}, {"progress": [1, 2]})
    parsed = verifier.parse("POST", message.headers, message.body)
    assert parsed.messages[0].message.keys == {"account_id": 42}
    assert parsed.messages[0].message.data == {"progress": [1, 2]}
    assert parsed.messages[0].message.id == message.id == message.headers["webhook-id"]
    assert {str(t) for t in parsed.messages[0].topics} == {"account_id=42"}


def test_a_parsed_message_is_an_ordinary_frozen_message(secret, verifier):
    """The parser builds Messages without their __init__; nothing may tell."""
    import dataclasses

    from skyhooks import Message

    sent = Signer(secret).build({"account_id": 42}, [1])
    got = verifier.parse("POST", sent.headers, sent.body).messages[0].message
    made = Message(keys={"account_id": 42}, data=[1], id=sent.id)
    assert type(got) is Message and got == made and vars(got) == vars(made)  # no field more or less
    assert repr(got) == repr(made) and dataclasses.asdict(got) == dataclasses.asdict(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.data = None  # type: ignore[misc]
    assert dataclasses.replace(got, data=2) == Message(keys={"account_id": 42}, data=2, id=sent.id)


def test_headers_in_any_case(secret, verifier):
    message = Signer(secret).build({"a": 1}, None)
    shouty = {k.upper(): v for k, v in message.headers.items()}
    assert verifier.parse("post", shouty, message.body).messages[0].message.data is None


def test_standardwebhooks_verifies_what_we_sign(secret):
    message = Signer(secret).build({"a": 1}, {"x": "é"})
    payload = standardwebhooks.Webhook(secret).verify(message.body, dict(message.headers))
    assert payload == {"keys": {"a": 1}, "data": {"x": "é"}}


@given(
    message_id=st.text(min_size=1, max_size=40),
    data=st.recursive(st.none() | st.integers() | st.text(), lambda c: st.lists(c, max_size=3), max_leaves=8),
    timestamp=st.floats(min_value=0, max_value=4e9),
    raw_key=st.binary(min_size=1, max_size=200),  # past 64 bytes the HMAC key is hashed first
)
def test_signatures_are_exactly_standardwebhooks_sign(message_id, data, timestamp, raw_key):
    """Signer signs from a keyed HMAC copy, not through the package's sign(): same bytes."""
    import base64

    secret = "whsec_" + base64.b64encode(raw_key).decode()
    message = Signer(secret).build({"a": 1}, data, message_id=message_id, timestamp=timestamp)
    when = datetime.fromtimestamp(int(timestamp), tz=timezone.utc)
    expected = standardwebhooks.Webhook(secret).sign(message_id, when, message.body.decode())
    assert message.headers["webhook-signature"] == expected
    assert message.headers["webhook-timestamp"] == str(int(timestamp))


def test_we_verify_what_standardwebhooks_signs(secret, verifier):
    body = json.dumps({"keys": {"account_id": "7"}, "data": 1})
    now = datetime.now(tz=timezone.utc)
    signature = standardwebhooks.Webhook(secret).sign("msg_external", now, body)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "webhook-id": "msg_external",
        "webhook-timestamp": str(int(now.timestamp())),
        # several signatures, as during secret rotation: one valid is enough
        "webhook-signature": f"v1,AAAA {signature}",
    }
    assert verifier.parse("POST", headers, body.encode()).messages[0].message.id == "msg_external"


def _status(verifier, method, headers, body):
    with pytest.raises(RequestError) as info:
        verifier.parse(method, headers, body)
    return info.value.status, info.value.reason


def test_every_malformed_input_maps_to_its_status(secret, verifier):
    good = Signer(secret).build({"a": 1}, None)
    h = dict(good.headers)
    cases = [
        ("GET", h, good.body, 405),
        ("POST", h, b"x" * (1024 * 1024 + 1), 413),
        ("POST", {**h, "content-type": "text/plain"}, good.body, 415),
        ("POST", {"content-type": "application/json"}, good.body, 401),
        ("POST", {**h, "webhook-signature": "v1"}, good.body, 401),  # ValueError inside the package
        ("POST", {**h, "webhook-signature": "v1,@@@"}, good.body, 401),  # binascii.Error
        ("POST", {**h, "webhook-signature": "v1,a,b"}, good.body, 401),
        ("POST", {**h, "webhook-timestamp": "nan"}, good.body, 401),
        ("POST", {**h, "webhook-timestamp": "1e400"}, good.body, 401),
        ("POST", {**h, "webhook-timestamp": str(int(time.time()) - 301)}, good.body, 401),
        ("POST", {**h, "webhook-id": "x" * 300}, good.body, 401),
        ("POST", h, good.body + b" ", 401),  # body changed after signing
        ("POST", h, b"\xff" + good.body, 401),  # changed after signing (and not UTF-8)
    ]
    for method, headers, body, expected in cases:
        assert _status(verifier, method, headers, body)[0] == expected, (method, headers, body[:20])
    other = Signer(generate_secret()).build({"a": 1}, None)
    assert _status(verifier, "POST", other.headers, other.body)[0] == 401


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'"x"',
        b'{"data": 1}',
        b'{"keys": []}',
        b'{"keys": {"a b": 1}}',
        b'{"keys": {"a": 1.5}}',
        b'{"keys": {"a": 1}, "data": Infinity}',
        b"[" * 50_000 + b"]" * 50_000,
        b'{"keys": {"a": 1' + b"0" * 5000 + b"}}",
    ],
)
def test_bad_bodies_are_400(secret, verifier, body):
    headers = _sign(secret, body)
    status, reason = _status(verifier, "POST", headers, body)
    assert status == 400 and reason


def _sign(secret, body: bytes, msg_id: str = "msg_1") -> dict[str, str]:
    now = datetime.now(tz=timezone.utc)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(secret).sign(msg_id, now, body.decode()),
    }


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["POST", "GET", "post", "DELETE"]),
    headers=st.dictionaries(
        st.sampled_from(["content-type", "webhook-id", "webhook-timestamp", "webhook-signature", "x"]),
        st.text(max_size=80),
    ),
    body=st.binary(max_size=300),
)
def test_any_request_is_a_message_or_a_4xx(method, headers, body):
    verifier = Verifier("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    try:
        verifier.parse(method, headers, body)
    except RequestError as exc:
        assert 400 <= exc.status < 500 and exc.reason


@settings(max_examples=200, deadline=None)
@given(
    data=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_any_json_data_round_trips(data):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    message = Signer(secret).build({"k": 1}, data)
    assert Verifier(secret).parse("POST", message.headers, message.body).messages[0].message.data == data


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_data_encodes_exactly_as_the_json_encoder_does(data):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    def outcome(encode):
        try:
            return encode(data)
        except ValueError as exc:  # NaN and the infinities
            return type(exc)

    def ours(value):
        fields = Signer(secret).encode({"a": 1}, value).fields
        return fields[len('"keys":{"a":1},"data":') :]

    def standard(value):
        return json.dumps(value, separators=(",", ":"), allow_nan=False)

    assert outcome(ours) == (InvalidDataError if outcome(standard) is ValueError else outcome(standard))


def test_unencodable_data_is_refused_as_invalid(secret):
    circular: list = []
    circular.append(circular)
    for data in (circular, {1j: 2}, {"x": float("nan")}, b"bytes"):
        with pytest.raises(InvalidDataError):
            Signer(secret).encode({"a": 1}, data)


def test_bad_data_and_keys_fail_before_sending(secret):
    signer = Signer(secret)
    with pytest.raises(InvalidDataError):
        signer.build({"a": 1}, {"x": object()})
    with pytest.raises(InvalidDataError):
        signer.build({"a": 1}, float("nan"))
    with pytest.raises(InvalidKeysError):
        signer.build({"a b": 1}, None)


@pytest.mark.parametrize("secret", ["", "   ", "whsec_", "whsec_!!!!"])
def test_unusable_secrets_say_how_to_make_one(secret):
    with pytest.raises(ConfigurationError, match="generate_secret"):
        Signer(secret)


def test_recent_ids_are_bounded_and_expire():
    now = [0.0]
    recent = RecentIds(window=10, max_size=3, clock=lambda: now[0])
    assert not recent.check_and_add("a")
    assert recent.check_and_add("a")
    for name in "bcd":
        assert not recent.check_and_add(name)
    assert len(recent) == 3
    assert not recent.check_and_add("a")  # forgotten: oldest first past max_size
    now[0] = 11
    assert not recent.check_and_add("e")
    assert len(recent) == 1  # the rest expired
    now[0] = 15
    assert recent.check_and_add("e")  # still within its window
    now[0] = 21.5
    assert not recent.check_and_add("e")  # expired even with no size pressure: new again


def test_replies_from_foreign_receivers_count_as_one():
    assert parse_reply(b'{"status":"ok","notified":3}').notified == 3
    assert parse_reply(b'{"status":"ok","notified":0,"duplicate":true}').duplicate
    assert parse_reply(b"thanks").notified == 1
    assert parse_reply(b'{"notified": true}').notified == 1


# -- the batch extension ---------------------------------------------------------------


def test_batch_round_trip_keeps_each_message_id(secret, verifier):
    signer = Signer(secret)
    encoded = [signer.encode({"account_id": 42}, {"n": i}) for i in range(3)]
    batch = signer.build_batch(encoded)
    assert batch.id.startswith("batch_") and batch.headers["webhook-id"] == batch.id
    parsed = verifier.parse("POST", batch.headers, batch.body)
    assert parsed.batch
    assert [m.message.id for m in parsed.messages] == [e.id for e in encoded]
    assert [m.message.data for m in parsed.messages] == [{"n": 0}, {"n": 1}, {"n": 2}]
    # any Standard Webhooks verifier accepts the batch: it is one signed JSON body
    assert standardwebhooks.Webhook(secret).verify(batch.body, dict(batch.headers))["messages"][0]["id"]


def test_a_single_message_keeps_the_v1_format(secret):
    signer = Signer(secret)
    one = signer.sign(signer.encode({"a": 1}, [1]))
    assert json.loads(one.body) == {"keys": {"a": 1}, "data": [1]}
    assert one.headers["webhook-id"] == one.id


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"messages": []}', "non-empty list"),
        (b'{"messages": {}}', "non-empty list"),
        (b'{"messages": [{"keys": {"a": 1}}]}', "message 0 of the batch needs an id"),
        (b'{"messages": [{"id": "m1", "keys": {"a": 1}}, {"id": "m2", "keys": {"a b": 1}}]}', "message 1"),
        (b'{"messages": [{"id": "m1", "data": 1}]}', "message 0"),
        (b'{"messages": [1]}', "message 0"),
    ],
)
def test_bad_batches_are_400_naming_the_message(secret, verifier, body, reason):
    status, text = _status(verifier, "POST", _sign(secret, body), body)
    assert status == 400 and reason in text


def test_batches_are_bounded(secret, verifier):
    from skyhooks.core.wire import MAX_BATCH

    items = ",".join(f'{{"id": "m{i}", "keys": {{"a": 1}}}}' for i in range(MAX_BATCH + 1))
    body = ('{"messages": [' + items + "]}").encode()
    status, text = _status(verifier, "POST", _sign(secret, body), body)
    assert status == 400 and f"at most {MAX_BATCH}" in text


def test_batch_replies():
    reply = parse_reply(b'{"status":"ok","notified":4,"results":[3,1,null]}')
    assert reply.notified == 4 and reply.results == (3, 1, None)
    assert parse_reply(b'{"status":"ok","notified":4,"results":[true]}').results is None  # malformed: unknown


def test_a_full_memory_of_ids_forgets_its_oldest_hundredth_at_once():
    recent = RecentIds(window=10, max_size=200, clock=lambda: 0.0)
    for n in range(200):
        assert not recent.check_and_add(str(n))
    assert not recent.check_and_add("new")
    assert len(recent) == 199  # 0 and 1 forgotten together, "new" remembered
    assert not recent.check_and_add("0")  # (199 ids: room for it)
    assert not recent.check_and_add("1")  # full again: "2" and "3" go
    assert len(recent) == 199
    assert not recent.check_and_add("3")
    assert recent.check_and_add("new") and recent.check_and_add("199")
