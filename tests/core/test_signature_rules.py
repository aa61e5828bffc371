"""The signature rules of docs/protocol.md, checked against an independent HMAC.

These are skyhooks' promises, not any package's behaviour: a request is
accepted exactly when its timestamp is unix seconds in ASCII digits within 5
minutes of now and one of its space-separated ``v1,<base64>`` entries is the
HMAC-SHA256 of ``id.timestamp.body``; every other entry is passed over. The
standardwebhooks package appears only as a peer that must interoperate on
valid signatures (tests/core/test_protocol.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from skyhooks.core.errors import RequestError
from skyhooks.core.wire import Verifier

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = base64.b64decode(SECRET[len("whsec_") :])
NOW = 1_760_000_000
VERIFIER = Verifier(SECRET, clock=lambda: NOW)
SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BODY = b'{"keys":{"account_id":1},"data":{"progress":50}}'


def mac(message_id: str, timestamp: str, body: bytes = BODY, key: bytes = KEY) -> str:
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verdict(message_id: str, timestamp: str, signature: str, body: bytes = BODY) -> int:
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature,
    }
    try:
        VERIFIER.parse("POST", headers, body)
    except RequestError as exc:
        return exc.status
    return 200


def expected(message_id: str, timestamp: str, signature: str, body: bytes = BODY) -> int:
    """The rules, written again independently of skyhooks.core.wire.signing."""
    if len(message_id) > 256 or len(signature) > 4096:
        return 401
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 15):
        return 401
    if abs(int(timestamp) - NOW) > 300:
        return 401
    try:
        want = hmac.new(KEY, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    except UnicodeEncodeError:
        return 401
    for entry in signature.split(" "):
        version, comma, value = entry.partition(",")
        if version != "v1" or not comma:
            continue
        try:
            if base64.b64decode(value, validate=True) == want:
                return 200
        except (binascii.Error, ValueError):
            continue
    return 401


timestamps = st.one_of(
    st.integers(-400, 400).map(lambda d: str(NOW + d)),
    st.integers(-400, 400).map(lambda d: "0" + str(NOW + d)),
    st.integers(-5, 5).map(lambda d: f" {NOW + d}"),
    st.integers(-5, 5).map(lambda d: f"{NOW + d}.5"),
    st.sampled_from(["0", "", "nan", "-inf", "1e400", "9" * 40, "+" + str(NOW), "-" + str(NOW), "١٢٣"]),
    st.text(max_size=20),
)
message_ids = st.one_of(st.just("msg_1"), st.text(min_size=1, max_size=40), st.just("msg_\ud800"))


@st.composite
def signature_headers(draw, message_id: str, timestamp: str) -> str:
    try:
        good = mac(message_id, timestamp)
    except UnicodeEncodeError:
        good = "AAAA"
    entry = st.one_of(
        st.just("v1," + good),
        st.just("v1," + good.rstrip("=")),  # unpadded: not valid base64
        st.just("v1," + good[:10] + "!" + good[10:]),  # junk inside the base64
        st.just("v1," + good + "=="),
        st.just("v1," + mac("msg_1", timestamp, key=b"other key") if timestamp.isascii() else "v1,x"),
        st.just("v2," + good),
        st.just("v1" + good),  # no comma
        st.just("v1,a," + good),  # two commas
        st.just("garbage"),
        st.just(""),  # from a doubled space
        st.text(max_size=12),
    )
    return " ".join(draw(st.lists(entry, min_size=1, max_size=4)))


@st.composite
def requests(draw):
    message_id = draw(message_ids)
    timestamp = draw(timestamps)
    return message_id, timestamp, draw(signature_headers(message_id, timestamp))


@SETTINGS
@given(requests())
@example(("msg_1", str(NOW), "v1," + mac("msg_1", str(NOW))))
@example(("msg_1", str(NOW), "garbage v1," + mac("msg_1", str(NOW))))
def test_the_verdict_is_the_rules(request):
    assert verdict(*request) == expected(*request)


@pytest.mark.parametrize(
    "signature",
    [
        "garbage {good}",  # an entry without a comma is passed over
        "{good} garbage",
        "v2,xyz {good}",  # another version
        "v1,AAAA {good}",  # a wrong v1 signature beside the right one (key rotation)
        "v1a, , v1, {good}",
        "v1,{other} {good}",
    ],
)
def test_junk_beside_a_valid_signature_is_passed_over(signature):
    good = "v1," + mac("msg_1", str(NOW))
    header = signature.format(good=good, other=mac("msg_1", str(NOW), key=b"other"))
    assert verdict("msg_1", str(NOW), header) == 200
    assert verdict("msg_1", str(NOW), header.replace(good, "")) == 401


@pytest.mark.parametrize("delta, status", [(-300, 200), (300, 200), (-301, 401), (301, 401)])
def test_the_window_is_five_minutes_either_way(delta, status):
    timestamp = str(NOW + delta)
    assert verdict("msg_1", timestamp, "v1," + mac("msg_1", timestamp)) == status


def test_the_timestamp_is_signed_as_sent():
    """A leading zero is still digits, signed as written: accepted when signed so."""
    timestamp = "0" + str(NOW)
    assert verdict("msg_1", timestamp, "v1," + mac("msg_1", timestamp)) == 200
    assert verdict("msg_1", timestamp, "v1," + mac("msg_1", str(NOW))) == 401


def test_oversized_headers_are_refused_unread():
    good = "v1," + mac("msg_1", str(NOW))
    assert verdict("msg_1", str(NOW), "v2,x " * 1000 + good) == 401
    assert verdict("m" * 257, str(NOW), good) == 401


def test_verifying_costs_one_hmac_however_many_entries():
    """A header of many junk entries is bounded work, not a hash per entry."""
    header = " ".join(["v1,AAAA"] * 500)
    started = time.perf_counter()
    assert verdict("msg_1", str(NOW), header) == 401
    assert time.perf_counter() - started < 1.0


def test_the_test_vector_of_docs_protocol_md():
    """The vector docs/protocol.md gives other implementations is what skyhooks signs."""
    from skyhooks.core.wire.signing import SigningKey, sign

    body = b'{"keys":{"account_id":42},"data":{"progress":100}}'
    signature = sign(SigningKey(SECRET), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1760000000, body)
    assert signature == "v1,jb2MedWatfoa+Zd6PSLZfj6RR5sIQaeHABvg8E1wdeE="
