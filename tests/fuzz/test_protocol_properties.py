"""Property tests for the request parser and the key rules, with valid signatures.

tests/core already shows that unsigned garbage is refused; these sign hostile
content properly, so it reaches the JSON and key checks behind the signature,
and play games with header names and values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from skyhooks.core.errors import InvalidKeysError, RequestError
from skyhooks.core.keys import MAX_KEYS, MAX_VALUE_LENGTH, topics_of, validate_keys
from skyhooks.core.wire import Signer, Verifier

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = base64.b64decode(SECRET[len("whsec_") :])
VERIFIER = Verifier(SECRET)
NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sign(body: bytes, message_id: str = "msg_1", timestamp: str | None = None) -> dict[str, str]:
    """Sign like any Standard Webhooks sender would, independently of skyhooks' Signer."""
    timestamp = timestamp or str(int(time.time()))
    mac = hmac.new(KEY, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def keys_are_valid(keys) -> bool:
    """The key rules of docs/protocol.md, written again independently of skyhooks.core.keys."""
    if not isinstance(keys, dict) or not 1 <= len(keys) <= MAX_KEYS:
        return False
    for name, value in keys.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            return False
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return False
        if isinstance(value, int) and abs(value) >= 10 ** (MAX_VALUE_LENGTH + 1):
            return False
        if len(str(value)) > MAX_VALUE_LENGTH:
            return False
    return True


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
key_names = st.one_of(
    st.from_regex(NAME, fullmatch=True),
    st.text(max_size=70),
    st.sampled_from(["", "a b", "a\n", "é", "a/b", "x" * 65, "__proto__", "$where"]),
)
key_values = st.one_of(
    st.integers(),
    st.text(max_size=300),
    st.booleans(),
    st.none(),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.just(10**300),
    st.just("9" * 257),
)
hostile_keys = st.one_of(st.dictionaries(key_names, key_values, max_size=6), json_values)


def parse(body: bytes, headers: dict[str, str]):
    try:
        return VERIFIER.parse("POST", headers, body)
    except RequestError as exc:
        assert 400 <= exc.status < 500 and exc.reason, exc
        return exc


@SETTINGS
@given(keys=hostile_keys, data=json_values)
@example(keys={"a": "x"}, data=[[[[[]]]]])
def test_signed_hostile_keys_are_accepted_exactly_when_the_rules_allow(keys, data):
    body = json.dumps({"keys": keys, "data": data}).encode()
    result = parse(body, sign(body))
    if keys_are_valid(keys):
        assert not isinstance(result, RequestError), result
        assert result.messages[0].message.keys == keys and result.messages[0].message.data == data
        assert len(result.messages) == 1 and not result.batch
        assert result.messages[0].topics == topics_of(keys)
    else:
        assert isinstance(result, RequestError) and result.status == 400, (keys, result)


@SETTINGS
@given(keys=hostile_keys)
def test_validate_keys_matches_the_rules(keys):
    try:
        checked = validate_keys(keys)
    except InvalidKeysError as exc:
        assert str(exc)
        assert not keys_are_valid(keys), keys
    else:
        assert keys_are_valid(keys) and checked == keys


@SETTINGS
@given(depth=st.integers(1, 200_000), kind=st.sampled_from(["[", '{"a":']))
@example(depth=100_000, kind="[")
def test_deep_nesting_is_400_never_a_crash(depth, kind):
    close = "]" if kind == "[" else "}"
    body = ('{"keys":{"a":1},"data":' + kind * depth + "1" + close * depth + "}").encode()
    result = parse(body, sign(body))
    assert isinstance(result, RequestError) or result.messages[0].message.keys == {"a": 1}


@SETTINGS
@given(
    literal=st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1" * 5000,
            "1e999",
            "-0",
            "1E400",
            '"\\ud800"',
            '"\\u0000"',
            "tru",
            "01",
            '"\\x41"',
        ]
    )
)
def test_odd_json_literals_are_accepted_or_400(literal):
    for body in (f'{{"keys":{{"a":1}},"data":{literal}}}', f'{{"keys":{{"a":{literal}}}}}'):
        raw = body.encode()
        parse(raw, sign(raw))


@SETTINGS
@given(
    body=st.binary(max_size=400),
    message_id=st.text(min_size=1, max_size=300),
    timestamp=st.one_of(
        st.none(),
        st.text(max_size=30),
        st.sampled_from([" 1700000000", "+1700000000", "1.7e9", "9" * 40, "-1", "0x10"]),
    ),
)
def test_correctly_signed_garbage_is_a_message_or_a_4xx(body, message_id, timestamp):
    if not utf8_ok(message_id) or (timestamp is not None and not utf8_ok(timestamp)):
        return
    parse(body, sign(body, message_id, timestamp))


@SETTINGS
@given(
    items=st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"id": st.text(min_size=1, max_size=20), "keys": hostile_keys, "data": json_values}
            ),
            json_values,
        ),
        max_size=5,
    ),
    extra=st.dictionaries(st.sampled_from(["data", "x"]), json_values, max_size=1),
)
@example(items=[{"id": "a", "keys": {"k": 1}, "data": None}] * 2, extra={})
def test_signed_hostile_batches_are_all_or_nothing(items, extra):
    """The batch extension: accepted only when every message in it is valid, each
    keeping its own id; otherwise one 400 and nothing dispatched."""
    body = json.dumps({"messages": items, **extra}).encode()
    result = parse(body, sign(body, "batch_1"))
    valid = bool(items) and all(
        isinstance(i, dict)
        and isinstance(i.get("id"), str)
        and 0 < len(i["id"]) <= 256
        and keys_are_valid(i.get("keys"))
        for i in items
    )
    if valid:
        assert not isinstance(result, RequestError), result
        assert result.batch and [m.message.id for m in result.messages] == [i["id"] for i in items]
        assert [m.message.keys for m in result.messages] == [i["keys"] for i in items]
    else:
        assert isinstance(result, RequestError) and result.status == 400, (items, result)


def case_games(draw_bools, name: str) -> str:
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(name, draw_bools, strict=False))


@SETTINGS
@given(
    flips=st.lists(st.booleans(), min_size=20, max_size=20),
    media=st.sampled_from(
        [
            "application/json",
            "APPLICATION/JSON",
            " application/json ",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
        ]
    ),
)
def test_header_names_in_any_case_and_media_type_whitespace(flips, media):
    message = Signer(SECRET).build({"account_id": 42}, {"x": 1})
    headers = {case_games(flips, k): v for k, v in message.headers.items()}
    headers[case_games(flips, "content-type")] = media
    result = parse(message.body, headers)
    assert not isinstance(result, RequestError), result
    assert result.messages[0].message.id == message.id


@SETTINGS
@given(position=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_any_changed_body_byte_is_refused(position, flip):
    message = Signer(SECRET).build({"account_id": 42}, {"text": "hello"})
    body = bytearray(message.body)
    body[position % len(body)] ^= flip
    result = parse(bytes(body), dict(message.headers))
    assert isinstance(result, RequestError) and result.status in (400, 401)


@SETTINGS
@given(
    pad=st.sampled_from([" ", "\t", "\n", "\r\n"]),
    field=st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]),
)
def test_whitespace_in_signature_headers_never_verifies_another_message(pad, field):
    """Whitespace around a signed header either still verifies the same message (and
    then the id is the one that was signed) or is refused with 401."""
    message = Signer(SECRET).build({"account_id": 42}, {"x": 1})
    headers = dict(message.headers)
    headers[field] = pad + headers[field] + pad
    result = parse(message.body, headers)
    if isinstance(result, RequestError):
        assert result.status == 401
    else:
        assert result.messages[0].message.id.strip() == message.id and result.messages[0].message.keys == {
            "account_id": 42
        }


@SETTINGS
@given(
    signatures=st.lists(st.sampled_from(["v1,AAAA", "v2,xyz", "v1a,", ",", "v1,", "v1,====="]), max_size=4)
)
def test_extra_signatures_in_the_header(signatures):
    """Standard Webhooks allows several space-separated signatures: the valid one wins,
    junk around it never causes a 500."""
    message = Signer(SECRET).build({"account_id": 42}, {"x": 1})
    headers = dict(message.headers)
    headers["webhook-signature"] = " ".join([*signatures, message.headers["webhook-signature"]])
    result = parse(message.body, headers)
    assert not isinstance(result, RequestError), result
    headers["webhook-signature"] = " ".join(signatures)
    result = parse(message.body, headers)
    assert isinstance(result, RequestError) and result.status == 401


def test_an_entry_without_a_comma_is_passed_over():
    """docs/protocol.md: entries skyhooks cannot read are passed over, so a junk entry
    before a valid signature does not spoil it; junk alone is a clean 401."""
    message = Signer(SECRET).build({"account_id": 42}, {"x": 1})
    headers = dict(message.headers)
    headers["webhook-signature"] = "garbage " + message.headers["webhook-signature"]
    result = parse(message.body, headers)
    assert not isinstance(result, RequestError), result
    headers["webhook-signature"] = "garbage"
    result = parse(message.body, headers)
    assert isinstance(result, RequestError) and result.status == 401
