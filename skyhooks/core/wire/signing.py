"""Standard Webhooks signatures: the secret, signing, and verifying.

Written plainly with :mod:`hmac` from the Standard Webhooks specification
(``docs/protocol.md`` says what skyhooks accepts), so what a request must
carry to be accepted is skyhooks' own rule and does not move with any
package's release. The ``standardwebhooks`` package stays the independent
check: the test suite signs with it and verifies our signatures with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from ..errors import ConfigurationError, Unauthorized

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_SIGNATURE_LENGTH",
    "TOLERANCE",
    "SigningKey",
    "decode_secret",
    "generate_secret",
    "sign",
    "verify",
]

#: Seconds a timestamp may be off from now, either way (the specification's 5 minutes).
TOLERANCE = 300
MAX_ID_LENGTH = 256
#: Enough for a dozen signatures (key rotation); longer headers are refused unread.
MAX_SIGNATURE_LENGTH = 4096
#: The longest timestamp we read: unix seconds stay under 15 digits for millennia.
_MAX_TIMESTAMP_DIGITS = 15
_PREFIX = "whsec_"


def generate_secret() -> str:
    """A new random Standard Webhooks secret (``whsec_`` + base64 of 32 bytes)."""
    return _PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def decode_secret(secret: str | bytes) -> bytes:
    """The HMAC key of a Standard Webhooks secret.

    A ``str`` is base64, with or without the ``whsec_`` prefix (as every
    Standard Webhooks library reads it); ``bytes`` are the raw key. Raises
    :class:`ConfigurationError` for an empty or undecodable secret.
    """
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret.strip()
        if text.startswith(_PREFIX):
            text = text[len(_PREFIX) :]
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError(_SECRET_HELP) from exc
    if not key:
        raise ConfigurationError(_SECRET_HELP)
    return key


_SECRET_HELP = (
    "the secret must be a Standard Webhooks secret, 'whsec_' followed by base64 "
    "(make one with skyhooks.generate_secret()), or raw bytes"
)


class SigningKey:
    """HMAC-SHA256 under one secret, keyed once: each message copies the keyed
    state (``hmac.HMAC.copy``) instead of setting the key up again. Thread-safe:
    the keyed state is only ever copied, never updated."""

    __slots__ = ("_keyed",)

    def __init__(self, secret: str | bytes) -> None:
        self._keyed = hmac.new(decode_secret(secret), digestmod=hashlib.sha256)

    def mac(self, data: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(data)
        return mac.digest()


def sign(key: SigningKey, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    mac = key.mac(b"%s.%d.%s" % (message_id.encode(), timestamp, body))
    return "v1," + base64.b64encode(mac).decode("ascii")


def verify(
    key: SigningKey,
    message_id: str,
    timestamp: str,
    signature: str,
    body: bytes,
    clock: Callable[[], float] = time.time,
) -> None:
    """Accept the signature headers of one request, or raise :class:`Unauthorized`.

    The rules (``docs/protocol.md``): the timestamp is unix seconds in ASCII
    digits, within :data:`TOLERANCE` of now; the signature header is one or
    more space-separated ``version,signature`` entries, and the request is
    accepted when any ``v1`` entry is the base64 HMAC-SHA256 of
    ``id.timestamp.body``. Entries of other versions, and entries we cannot
    read, are passed over, so a sender may list signatures under several keys
    (rotation) or schemes; with no matching ``v1`` entry the request is refused.
    """
    if len(message_id) > MAX_ID_LENGTH:
        raise Unauthorized(f"webhook-id longer than {MAX_ID_LENGTH} characters")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        raise Unauthorized("webhook-timestamp must be unix seconds in digits")
    seconds = int(timestamp)
    if abs(seconds - clock()) > TOLERANCE:
        raise Unauthorized(f"webhook-timestamp is more than {TOLERANCE} seconds away from now")
    if len(signature) > MAX_SIGNATURE_LENGTH:
        raise Unauthorized(f"webhook-signature longer than {MAX_SIGNATURE_LENGTH} characters")
    try:
        signed = b"%s.%s.%s" % (message_id.encode(), timestamp.encode(), body)
    except UnicodeEncodeError as exc:  # a lone surrogate in the id
        raise Unauthorized("webhook-id is not valid text") from exc
    expected = key.mac(signed)
    # The usual header is one entry, ours: compared whole, with nothing to decode.
    if hmac.compare_digest(signature.encode("utf-8", "replace"), b"v1," + base64.b64encode(expected)):
        return
    for entry in signature.split(" "):
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, expected):
            return
    raise Unauthorized("no valid v1 signature in webhook-signature")
