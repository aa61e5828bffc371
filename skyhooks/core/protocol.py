"""The wire protocol (version 1), sans-IO.

Outgoing: :class:`Signer` turns keys and data into a signed body and Standard
Webhooks headers. Incoming: :func:`parse_request` turns ``(method, headers,
body)`` into a :class:`Message` or raises a :class:`RequestError` carrying the
HTTP status. :class:`RecentIds` remembers message ids to acknowledge duplicates.
No sockets anywhere: adapters do the I/O.

Signing and verifying go through the ``standardwebhooks`` package, so any
Standard Webhooks sender or receiver interoperates with skyhooks.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import itertools
import json
import json.encoder
import math
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

import standardwebhooks

from .errors import (
    BadRequest,
    ConfigurationError,
    InvalidDataError,
    InvalidKeysError,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestError,
    Unauthorized,
    UnsupportedMediaType,
)
from .forks import reset_in_child
from .keys import Keys, Topic, checked_topics
from .values import Message, trusted_message

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "MAX_BATCH",
    "REQUEST_HEADERS",
    "TOLERANCE",
    "EncodedMessage",
    "OutgoingMessage",
    "ParsedMessage",
    "ParsedRequest",
    "RecentIds",
    "Response",
    "Signer",
    "batch_response",
    "error_response",
    "generate_secret",
    "ok_response",
    "parse_reply",
    "parse_request",
]

DEFAULT_MAX_BODY_SIZE = 1024 * 1024
#: Standard Webhooks' timestamp tolerance (fixed at 5 minutes by the package).
TOLERANCE = 300.0
MAX_ID_LENGTH = 256
#: Messages per batch request, at most (the body size limit applies too).
MAX_BATCH = 1000
_SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
#: The only request headers :func:`parse_request` reads (it takes them in any
#: case): an adapter may pass just these rather than copy every header.
REQUEST_HEADERS = ("content-type", *_SIGNATURE_HEADERS)


def generate_secret() -> str:
    """A new random Standard Webhooks secret (``whsec_`` + base64 of 32 bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _webhook(secret: str | bytes) -> standardwebhooks.Webhook:
    if isinstance(secret, str) and not secret.strip():
        secret = ""
    try:
        return standardwebhooks.Webhook(secret)
    except (ValueError, binascii.Error, standardwebhooks.webhooks.EmptyWebhookSecretError) as exc:
        raise ConfigurationError(
            "the secret must be a Standard Webhooks secret, 'whsec_' followed by base64 "
            "(make one with skyhooks.generate_secret()), or raw bytes"
        ) from exc


@dataclass(frozen=True)
class OutgoingMessage:
    """A signed request body, ready to POST to any number of URLs unchanged."""

    id: str
    topics: frozenset[Topic]
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class EncodedMessage:
    """One validated message, its JSON encoded once: ``fields`` is
    ``"keys":{...},"data":...``, shared by the single and the batch formats."""

    id: str
    topics: frozenset[Topic]
    fields: str


# One encoder, made once (json.dumps with options makes one per call). allow_nan=False:
# NaN and Infinity are not JSON, and other receivers choke on them.
_DATA_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _one_shot_encoder() -> Callable[[Any], str]:
    """``_DATA_JSON.encode``, with the C encoder it builds on every call built once.

    JSONEncoder.encode makes a new C encoder per call (1.5 us, half its cost on
    a small message), and a message encodes its keys and its data. Built here
    without the circular-reference check, whose memo would need resetting after
    an error: a circular value still fails, with RecursionError, which
    :meth:`Signer.encode` reports like any other. Where the C encoder is
    missing (another Python), JSONEncoder.encode it is.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _DATA_JSON.encode
    # (markers, default, encode_str, indent, key_separator, item_separator, sort_keys, skipkeys, allow_nan)
    escape = json.encoder.encode_basestring_ascii
    chunks = make(None, _DATA_JSON.default, escape, None, ":", ",", False, False, False)

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode


_to_json = _one_shot_encoder()


class _Ids:
    """Message ids: a random 96-bit prefix per process and a counter.

    Unique across publishers and processes like a uuid4, at a fraction of the
    cost (a uuid4 per message was a tenth of a batched publisher's time). A
    forked child draws a prefix of its own, so a Celery worker's children that
    inherit one publisher never repeat each other's ids (a receiver would drop
    the repeats as duplicates).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = secrets.token_hex(12)
        self.counter = itertools.count(1)  # next() on it is atomic under the GIL: thread-safe

    def new(self, kind: str) -> str:
        return f"{kind}{self.prefix}{next(self.counter):x}"


_IDS = _Ids()
os.register_at_fork(after_in_child=_IDS.reset)
_new_id = _IDS.new


class Signer:
    """Builds signed requests. Thread-safe (it holds only the key)."""

    def __init__(self, secret: str | bytes) -> None:
        self._webhook = _webhook(secret)
        self._mac = _mac_of(self._webhook)

    def encode(self, keys: Keys, data: Any, *, message_id: str | None = None) -> EncodedMessage:
        """Validate and encode one message, without signing it.

        Raises :class:`InvalidKeysError` or :class:`InvalidDataError` (both
        ``ValueError``) before anything could be sent.
        """
        checked, topics = checked_topics(keys)
        try:
            data_text = _to_json(data)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidDataError(f"data cannot be sent as JSON: {exc}") from exc
        return EncodedMessage(
            message_id or _new_id("msg_"),
            topics,
            f'"keys":{_to_json(checked)},"data":{data_text}',
        )

    def sign(self, encoded: EncodedMessage, *, timestamp: float | None = None) -> OutgoingMessage:
        """The wire-v1 request for one message: ``{"keys": ..., "data": ...}``."""
        return self._signed(encoded.id, encoded.topics, "{" + encoded.fields + "}", timestamp)

    def build(
        self,
        keys: Keys,
        data: Any,
        *,
        message_id: str | None = None,
        timestamp: float | None = None,
    ) -> OutgoingMessage:
        """Validate, encode and sign one message (see :meth:`encode`)."""
        return self.sign(self.encode(keys, data, message_id=message_id), timestamp=timestamp)

    def build_batch(
        self, messages: Sequence[EncodedMessage], *, timestamp: float | None = None
    ) -> OutgoingMessage:
        """One request carrying several messages (the batch extension):
        ``{"messages": [{"id": ..., "keys": ..., "data": ...}, ...]}``, signed
        once under a ``webhook-id`` of its own. Each message keeps its id, so a
        receiver drops the duplicates of a retried batch one by one."""
        items = ",".join('{"id":' + json.dumps(m.id) + "," + m.fields + "}" for m in messages)
        topics = frozenset().union(*(m.topics for m in messages))
        return self._signed(_new_id("batch_"), topics, '{"messages":[' + items + "]}", timestamp)

    def _signed(
        self, message_id: str, topics: frozenset[Topic], text: str, timestamp: float | None
    ) -> OutgoingMessage:
        seconds = int(time.time() if timestamp is None else timestamp)
        if self._mac is None:  # the package changed how it keeps its key: its own path
            signature = self._webhook.sign(message_id, datetime.fromtimestamp(seconds, tz=timezone.utc), text)
        else:
            # What standardwebhooks' sign() computes, "v1," + base64 of HMAC-SHA256 over
            # "id.timestamp.body", from a keyed copy: a third of the cost of sign() with
            # its datetime and hmac set-up (tests/core/test_protocol.py compares the two).
            digest = self._mac.digest(f"{message_id}.{seconds}.{text}".encode())
            signature = "v1," + binascii.b2a_base64(digest, newline=False).decode("ascii")
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(seconds),
            "webhook-signature": signature,
        }
        return OutgoingMessage(message_id, topics, text.encode("utf-8"), headers)


# Named tuples rather than frozen dataclasses: immutable all the same, and made
# in a third of the time on the path every incoming request takes.
class ParsedMessage(NamedTuple):
    """A verified incoming message and the topics it addresses."""

    message: Message
    topics: frozenset[Topic]


class ParsedRequest(NamedTuple):
    """What one verified request carried: one message, or several (``batch``)."""

    messages: tuple[ParsedMessage, ...]
    batch: bool = False


# What a named tuple's own __new__ (a Python function) ends in, called
# directly on the path every request takes (each parsed message, and its
# request): about 1,200 fewer instructions each, by callgrind's count.
_new_tuple: Callable[..., Any] = tuple.__new__


class _Sha256(Protocol):
    """A ``hashlib.sha256`` object (typeshed names its class privately)."""

    def copy(self) -> _Sha256: ...
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Mac(NamedTuple):
    """HMAC-SHA256 keyed with one secret, as RFC 2104 builds it: SHA-256 states
    that have already hashed the key XOR ipad and the key XOR opad, copied per
    message. ``inner.copy()``, the message, ``outer.copy()``, the inner digest:
    two digest-context copies where OpenSSL's HMAC object copies three (its
    inner, outer and working contexts). 0.2 us less per webhook warm, 0.7 us
    with the caches cold, and 0.3 us (of the core's ~15) measured inside a
    Tornado server under wrk (tests/core/test_protocol.py checks it against hmac)."""

    inner: _Sha256
    outer: _Sha256

    def digest(self, *parts: bytes) -> bytes:
        """HMAC-SHA256 of the concatenated *parts* (off the receive path)."""
        inner = self.inner.copy()
        for part in parts:
            inner.update(part)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class Verifier:
    """Checks incoming requests; see :func:`parse_request`."""

    def __init__(self, secret: str | bytes, *, max_body_size: int = DEFAULT_MAX_BODY_SIZE) -> None:
        self._webhook = _webhook(secret)
        self._mac = _mac_of(self._webhook)
        self.max_body_size = max_body_size

    def parse(self, method: str, headers: Mapping[str, str], body: bytes) -> ParsedRequest:
        return _parse(method, headers, body, self._webhook, self._mac, self.max_body_size)


def parse_request(
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    webhook: standardwebhooks.Webhook,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> ParsedRequest:
    """Verify and decode one webhook request.

    *headers* may use any case. Checks run cheapest-first and each failure
    raises the :class:`RequestError` subclass whose ``status`` DESIGN.md names:
    405 not POST, 413 over *max_body_size*, 415 not JSON, 401 missing or bad
    signature or stale timestamp, 400 anything malformed after that.
    """
    return _parse(method, headers, body, webhook, _mac_of(webhook), max_body_size)


def _parse(
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    webhook: standardwebhooks.Webhook,
    mac: _Mac | None,
    max_body_size: int,
) -> ParsedRequest:
    if method != "POST" and method.upper() != "POST":
        raise MethodNotAllowed(f"method {method} not allowed; webhooks are POSTed")
    if len(body) > max_body_size:
        raise PayloadTooLarge(f"body of {len(body)} bytes is over the limit of {max_body_size}")
    get = headers.get
    media_type = get("content-type")
    message_id = get("webhook-id")
    timestamp = get("webhook-timestamp")
    signature = get("webhook-signature")
    if media_type is None or message_id is None or timestamp is None or signature is None:
        # Names in other cases (the adapters pass lower case, and only these four).
        lower = {name.lower(): value for name, value in headers.items()}
        media_type = lower.get("content-type", "")
        message_id = lower.get("webhook-id")
        timestamp = lower.get("webhook-timestamp")
        signature = lower.get("webhook-signature")
    if media_type != "application/json":  # the usual case needs no splitting
        media_type = media_type.split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            raise UnsupportedMediaType(
                f"content-type must be application/json, not {media_type or 'missing'!r}"
            )
    if not (message_id and timestamp and signature):
        given = {"webhook-id": message_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
        missing = [name for name in _SIGNATURE_HEADERS if not given[name]]
        raise Unauthorized(f"unsigned request: missing {', '.join(missing)} header")
    if len(message_id) > MAX_ID_LENGTH:
        raise Unauthorized(f"webhook-id longer than {MAX_ID_LENGTH} characters")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("body is not UTF-8") from exc
    if mac is None or not _surely_valid(mac, message_id, timestamp, signature, body):
        _verify(webhook, text, message_id, timestamp, signature)
    try:
        payload = _decode(text)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"body is not valid JSON: {str(exc)[:200]}") from exc
    if isinstance(payload, dict) and "messages" in payload and "keys" not in payload:
        return ParsedRequest(_batch_messages(payload["messages"]), batch=True)
    parsed: ParsedRequest = _new_tuple(ParsedRequest, ((_message(payload, message_id),), False))
    return parsed


def _verify(
    webhook: standardwebhooks.Webhook, text: str, message_id: str, timestamp: str, signature: str
) -> None:
    """The package's verdict: returns if it accepts, raises :class:`Unauthorized` if not."""
    headers = {"webhook-id": message_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
    try:
        webhook.verify(text, headers, json_parse=False)
    except standardwebhooks.webhooks.WebhookVerificationError as exc:
        raise Unauthorized(f"signature rejected: {exc}") from exc
    except (ValueError, TypeError, OverflowError) as exc:
        # The package raises these (binascii.Error is a ValueError) on garbled
        # webhook-signature headers instead of its own error.
        raise Unauthorized("malformed webhook-signature header") from exc


_BLOCK = 64  # SHA-256's block size, in bytes
_IPAD = bytes(byte ^ 0x36 for byte in range(256))
_OPAD = bytes(byte ^ 0x5C for byte in range(256))


def _mac_of(webhook: standardwebhooks.Webhook) -> _Mac | None:
    """HMAC-SHA256 keyed with the webhook's secret, ready to copy per request
    (a copy skips the digest lookup and key setup of ``hmac.new``)."""
    # The package keeps the decoded secret here; should that ever change, every
    # request simply takes the package's own path.
    key = getattr(webhook, "_whsecret", None)
    if not (isinstance(key, bytes) and key):
        return None
    if len(key) > _BLOCK:  # RFC 2104: a long key is hashed first
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return _Mac(hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD)))


# Why a shortcut beside standardwebhooks: its verify() costs about half of a
# request's time in the core (datetime arithmetic, the pure-Python hmac
# module, base64 decoding, a header dict rebuilt). _surely_valid only ever
# *accepts*, and only requests the package is bound to accept too: a
# canonical timestamp (ASCII digits, no leading zero, so the package's
# str(floor(float(header))) is the header itself) at least a second inside
# the 5-minute window, and a "v1,<base64>" entry that is exactly the
# signature the package computes, reached before any entry the package
# would stumble on (no comma, two commas) or decode leniently (another v1
# entry: base64 decoding skips junk, so only the package may judge it).
# Everything else, every rejection included, goes to standardwebhooks, so
# the accepted and refused requests are exactly the package's
# (tests/core/test_verify_shortcut.py compares them on hostile inputs).
_WINDOW = TOLERANCE - 1.0


def _surely_valid(mac: _Mac, message_id: str, timestamp: str, signature: str, body: bytes) -> bool:
    if not (timestamp.isascii() and timestamp.isdigit()) or timestamp[0] == "0" or len(timestamp) > 15:
        return False
    if abs(int(timestamp) - time.time()) > _WINDOW:
        return False
    try:
        prefix = f"{message_id}.{timestamp}.".encode()  # (the timestamp is ASCII digits)
    except UnicodeEncodeError:  # a lone surrogate in the id
        return False
    # mac.digest(prefix, body), inlined: this runs once per webhook received.
    inner = mac.inner.copy()
    inner.update(prefix)
    inner.update(body)
    outer = mac.outer.copy()
    outer.update(inner.digest())
    expected = "v1," + binascii.b2a_base64(outer.digest(), newline=False).decode("ascii")
    if signature.isascii() and hmac.compare_digest(signature, expected):
        return True  # the usual header: one entry (what the loop's first turn decides)
    for entry in signature.split(" "):
        if entry.isascii() and hmac.compare_digest(entry, expected):
            return True
        version, comma, rest = entry.partition(",")
        if not comma or "," in rest or version == "v1":
            return False
    return False


def _message(payload: Any, message_id: str) -> ParsedMessage:
    if not isinstance(payload, dict) or "keys" not in payload:
        raise BadRequest('body must be a JSON object like {"keys": {...}, "data": ...}')
    try:
        keys, topics = checked_topics(payload["keys"])
    except InvalidKeysError as exc:
        raise BadRequest(str(exc)) from exc
    message = trusted_message(keys, payload.get("data"), message_id)
    parsed: ParsedMessage = _new_tuple(ParsedMessage, (message, topics))
    return parsed


def _batch_messages(items: Any) -> tuple[ParsedMessage, ...]:
    if not isinstance(items, list) or not items:
        raise BadRequest('"messages" must be a non-empty list of {"id": ..., "keys": {...}, "data": ...}')
    if len(items) > MAX_BATCH:
        raise BadRequest(f"at most {MAX_BATCH} messages per batch, got {len(items)}")
    parsed = []
    for index, item in enumerate(items):
        message_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_ID_LENGTH:
            raise BadRequest(f"message {index} of the batch needs an id of 1-{MAX_ID_LENGTH} characters")
        try:
            parsed.append(_message(item, message_id))
        except BadRequest as exc:
            raise BadRequest(f"message {index} of the batch: {exc.reason}") from exc
    return tuple(parsed)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads(text, parse_constant=...) would build a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
# The decoder's own scanner (C), as raw_decode calls it; typeshed does not list it.
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_JSON_SPACE = " \t\n\r"


def _decode(text: str) -> Any:
    """``_DECODER.decode(text)``, without its two regular-expression matches for
    the usual body (no whitespace around the value): a microsecond a request."""
    try:
        payload, end = _SCAN(text, 0)
    except StopIteration:  # leading whitespace, or no value at all: the decoder says which
        return _DECODER.decode(text)
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        return _DECODER.decode(text)  # raises "Extra data"
    return payload


@dataclass(frozen=True)
class Response:
    """An answer for the adapter to write: status, JSON body, content type."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})

    @functools.cached_property
    def header_pairs(self) -> tuple[tuple[str, str], ...]:
        """The headers and ``Content-Length`` as ``(name, value)`` pairs (WSGI's
        shape), made once per response: the usual answers are shared ones."""
        return (*self.headers.items(), ("Content-Length", str(len(self.body))))


def ok_response(notified: int, *, duplicate: bool = False) -> Response:
    # Formatted by hand: this is the hot path of every delivery, and the shape is fixed.
    if duplicate:
        return Response(200, b'{"status":"ok","notified":%d,"duplicate":true}' % notified, _JSON_HEADERS)
    if 0 <= notified < len(_OK_RESPONSES):
        return _OK_RESPONSES[notified]
    return Response(200, b'{"status":"ok","notified":%d}' % notified, _JSON_HEADERS)


# Read-only, so the answers every usual request gets can be built once and shared.
_JSON_HEADERS: Mapping[str, str] = MappingProxyType({"Content-Type": "application/json"})
_OK_RESPONSES = [Response(200, b'{"status":"ok","notified":%d}' % n, _JSON_HEADERS) for n in range(16)]


def error_response(error: RequestError) -> Response:
    """The JSON answer for a refused request: ``{"status": "error", "error": reason}``.

    Adapters that refuse a request themselves (before the body is read, say)
    use it too, so every refusal has the same shape: e.g.
    ``error_response(PayloadTooLarge("body over 1048576 bytes"))``.
    """
    payload = {"status": "error", "error": error.reason}
    headers = {"Content-Type": "application/json"}
    if error.status == 405:
        headers["Allow"] = "POST"
    return Response(error.status, json.dumps(payload).encode(), headers)


def batch_response(results: Sequence[int | None]) -> Response:
    """The answer to a batch: the total, and per message its count or ``null``
    for a duplicate: ``{"status":"ok","notified":4,"results":[3,1,null]}``."""
    total = sum(n for n in results if n is not None)
    items = ",".join("null" if n is None else str(n) for n in results)
    return Response(200, b'{"status":"ok","notified":%d,"results":[%s]}' % (total, items.encode()))


@dataclass(frozen=True)
class Reply:
    """What an instance answered, as the publisher reads it. For a batch,
    ``results`` has one entry per message: its count, or None for a duplicate."""

    notified: int
    duplicate: bool
    results: tuple[int | None, ...] | None = None


def parse_reply(body: bytes) -> Reply:
    """Read an instance's 2xx answer. A receiver that is not skyhooks (any
    Standard Webhooks endpoint) may answer anything: count it as one delivery
    with an unknown number of callbacks, never as zero (which would prune it)."""
    known = _KNOWN_REPLIES.get(body)
    if known is not None:  # what skyhooks receivers answer a single message, byte for byte
        return known
    try:
        payload = json.loads(body)
        notified = payload["notified"]
        if not _is_count(notified):
            raise ValueError(notified)
        results = payload.get("results")
        if results is not None:
            if not isinstance(results, list) or not all(n is None or _is_count(n) for n in results):
                raise ValueError(results)
            results = tuple(results)
        return Reply(notified, bool(payload.get("duplicate", False)), results)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return Reply(1, False)


# A reply is parsed per POST; the usual ones are these exact bytes (ok_response's).
_KNOWN_REPLIES = {response.body: Reply(n, False) for n, response in enumerate(_OK_RESPONSES)}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class RecentIds:
    """A bounded memory of message ids seen recently, to spot duplicates.

    An id is remembered for *window* seconds (twice the timestamp tolerance: a
    replay is only accepted while its timestamp is within tolerance, on either
    side of now) and at most *max_size* ids are kept, oldest forgotten first, so
    memory stays bounded under any load. Thread-safe: check-and-record is atomic.
    """

    def __init__(
        self,
        window: float = 2 * TOLERANCE,
        max_size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        *,
        thread_safe: bool = True,
    ) -> None:
        """*thread_safe=False* drops the lock, for a caller that only ever uses it
        from one thread (a registry: its loop's, or its hub's, where a patched
        lock costs a microsecond a request)."""
        self._window = window
        self._max_size = max_size
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._oldest = math.inf  # when the oldest id expires: no sweep before then
        self._lock = threading.Lock() if thread_safe else None
        if not thread_safe:  # one call fewer a request
            self.check_and_add = self._check_and_add  # type: ignore[method-assign]
        else:
            reset_in_child(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a thread of the parent's may have held it

    def check_and_add(self, message_id: str) -> bool:
        """Record *message_id*; return True if it had been seen already."""
        if self._lock is None:
            return self._check_and_add(message_id)
        with self._lock:
            return self._check_and_add(message_id)

    def _check_and_add(self, message_id: str) -> bool:
        now = self._clock()
        seen = self._seen
        if now >= self._oldest or len(seen) >= self._max_size:
            while seen:
                oldest, expires = next(iter(seen.items()))
                if expires > now and len(seen) < self._max_size:
                    break
                del seen[oldest]
            self._oldest = next(iter(seen.values())) if seen else math.inf
        if message_id in seen:
            return True
        expires = now + self._window
        if not seen:
            self._oldest = expires
        seen[message_id] = expires
        return False

    def __len__(self) -> int:
        return len(self._seen)
