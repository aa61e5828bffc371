"""The verification shortcut accepts and refuses exactly what standardwebhooks does.

``skyhooks.core.protocol._surely_valid`` accepts the usual well-signed request
without calling the package; everything else is left to the package. These
tests sign hostile variations properly and improperly and compare the
verdict (and the reason of every refusal) with the package-only path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import standardwebhooks
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from skyhooks.core import RequestError
from skyhooks.core.protocol import DEFAULT_MAX_BODY_SIZE, Verifier, _parse, _surely_valid

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = base64.b64decode(SECRET[len("whsec_") :])
VERIFIER = Verifier(SECRET)
MAC = VERIFIER._mac
WEBHOOK = standardwebhooks.Webhook(SECRET)
SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BODY = b'{"keys":{"account_id":1},"data":{"progress":50}}'


def verdict(headers: dict[str, str], body: bytes, *, shortcut: bool) -> tuple[int, str]:
    """(200, "") if accepted, else the refusal's (status, reason)."""
    mac = VERIFIER._mac if shortcut else None
    try:
        _parse("POST", headers, body, VERIFIER._webhook, mac, DEFAULT_MAX_BODY_SIZE)
    except RequestError as exc:
        return exc.status, exc.reason
    return 200, ""


def mac(message_id: str, timestamp: str, body: bytes, key: bytes = KEY) -> str:
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


now = int(time.time())
canonical = st.integers(-400, 400).map(lambda d: str(now + d))  # around both edges of the window
timestamps = st.one_of(
    canonical,
    canonical,
    canonical,
    st.integers(-400, 400).map(lambda d: "0" + str(now + d)),
    st.integers(-400, 400).map(lambda d: f" {now + d}"),
    st.integers(-400, 400).map(lambda d: f"{now + d}.{d % 10}"),
    st.integers(-400, 400).map(lambda d: f"{(now + d) / 1e9}e9"),
    st.integers(-400, 400).map(lambda d: str(now + d).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))),
    st.sampled_from(["0", "", "nan", "inf", "-inf", "1e400", "9" * 40, "+" + str(now), "-" + str(now)]),
    st.text(max_size=20),
)
message_ids = st.one_of(
    st.just("msg_1"), st.just("msg_1"), st.text(min_size=1, max_size=40), st.just("msg_\ud800")
)
bodies = st.one_of(
    st.just(BODY),
    st.just(BODY),
    st.just(BODY),
    st.binary(max_size=60),
    st.text(max_size=40).map(lambda t: t.encode("utf-8")),
)


@st.composite
def signature_headers(draw, message_id: str, timestamp: str, body: bytes) -> str:
    """A webhook-signature header: some entries right, some wrong, some garbled."""
    # The package signs str(floor(float(timestamp))): sign that too where it exists.
    try:
        signed_ts = str(int(float(timestamp)))
    except (ValueError, OverflowError):
        signed_ts = timestamp
    try:
        good = mac(message_id, signed_ts, body)
        literal = mac(message_id, timestamp, body)
    except UnicodeEncodeError:
        good = literal = "AAAA"
    entry = st.one_of(
        st.just("v1," + good),
        st.just("v1," + good),
        st.just("v1," + good),
        st.just("v1," + literal),
        st.just("v1," + good.rstrip("=")),  # bad padding: binascii.Error in the package
        st.just("v1," + good[:10] + "!" + good[10:]),  # junk the package's base64 decoding skips
        st.just("v1," + good + "=="),
        st.just("v1," + mac(message_id, signed_ts, body, b"other key") if message_id.isascii() else "v1,x"),
        st.just("v2," + good),
        st.just("v1" + good),  # no comma
        st.just("v1,a," + good),  # two commas
        st.just(""),  # from a doubled space
        st.text(max_size=12),
    )
    return " ".join(draw(st.lists(entry, min_size=1, max_size=4)))


@st.composite
def requests(draw):
    message_id = draw(message_ids)
    timestamp = draw(timestamps)
    body = draw(bodies)
    signature = draw(signature_headers(message_id, timestamp, body))
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature,
    }
    return headers, body


@SETTINGS
@given(requests())
@example(
    (
        {
            "content-type": "application/json",
            "webhook-id": "msg_1",
            "webhook-timestamp": str(now),
            "webhook-signature": "v1," + mac("msg_1", str(now), BODY),
        },
        BODY,
    )
)
def test_the_shortcut_gives_the_packages_verdict(request):
    headers, body = request
    got = verdict(headers, body, shortcut=True)
    assert got == verdict(headers, body, shortcut=False)
    event(f"status {got[0]}")


@SETTINGS
@given(requests())
def test_the_shortcut_only_accepts_what_the_package_accepts(request):
    headers, body = request
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return
    if _surely_valid(
        MAC, headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"], body
    ):
        WEBHOOK.verify(text, headers, json_parse=False)  # raises if the package disagrees


def test_the_shortcut_takes_the_usual_request_and_leaves_the_edges_to_the_package():
    ts = str(int(time.time()))
    assert _surely_valid(MAC, "msg_1", ts, "v1," + mac("msg_1", ts, BODY), BODY)
    assert _surely_valid(MAC, "msg_1", ts, "v2,xyz v1," + mac("msg_1", ts, BODY), BODY)  # rotation
    for timestamp in (str(int(time.time()) - 300), "0" + ts, ts + ".0"):
        assert not _surely_valid(MAC, "msg_1", timestamp, "v1," + mac("msg_1", timestamp, BODY), BODY)
    assert not _surely_valid(MAC, "msg_1", ts, "v1,AAAA v1," + mac("msg_1", ts, BODY), BODY)
    # ...and the package then accepts that one (secret rotation: one valid signature is enough)
    headers = {
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "webhook-timestamp": ts,
        "webhook-signature": "v1,AAAA v1," + mac("msg_1", ts, BODY),
    }
    assert verdict(headers, BODY, shortcut=True) == (200, "")
