"""Outgoing requests: a message encoded once, signed once, sent to every instance unchanged.

:class:`Signer` validates keys and data, encodes them (the single format
``{"keys": ..., "data": ...}`` and the batch format ``{"messages": [...]}``,
see ``docs/protocol.md``) and signs the body with Standard Webhooks headers.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidDataError
from ..keys import Keys, Topic, checked_topics
from .signing import SigningKey, sign

__all__ = ["MAX_BATCH", "EncodedMessage", "OutgoingMessage", "Signer"]

#: Messages per batch request, at most (the body size limit applies too).
MAX_BATCH = 1000

# One encoder, made once. allow_nan=False: NaN and Infinity are not JSON, and
# other receivers choke on them.
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


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


class _Ids:
    """Message ids: a random 96-bit prefix per process and a counter.

    Unique across publishers and processes like a uuid4, for less. A forked
    child draws a prefix of its own, so a Celery worker's children that
    inherit one publisher never repeat each other's ids (a receiver would
    drop the repeats as duplicates).
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


class Signer:
    """Builds signed requests. Thread-safe (it holds only the key)."""

    def __init__(self, secret: str | bytes) -> None:
        self._key = SigningKey(secret)

    def encode(self, keys: Keys, data: Any, *, message_id: str | None = None) -> EncodedMessage:
        """Validate and encode one message, without signing it.

        Raises :class:`InvalidKeysError` or :class:`InvalidDataError` (both
        ``ValueError``) before anything could be sent.
        """
        checked, topics = checked_topics(keys)
        try:
            data_text = _JSON.encode(data)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidDataError(f"data cannot be sent as JSON: {exc}") from exc
        return EncodedMessage(
            message_id or _IDS.new("msg_"), topics, f'"keys":{_JSON.encode(checked)},"data":{data_text}'
        )

    def sign(self, encoded: EncodedMessage, *, timestamp: float | None = None) -> OutgoingMessage:
        """The wire-v1 request for one message: ``{"keys": ..., "data": ...}``."""
        return self._signed(encoded.id, encoded.topics, "{" + encoded.fields + "}", timestamp)

    def build(
        self, keys: Keys, data: Any, *, message_id: str | None = None, timestamp: float | None = None
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
        items = ",".join('{"id":' + _JSON.encode(m.id) + "," + m.fields + "}" for m in messages)
        topics = frozenset().union(*(m.topics for m in messages))
        return self._signed(_IDS.new("batch_"), topics, '{"messages":[' + items + "]}", timestamp)

    def _signed(
        self, message_id: str, topics: frozenset[Topic], text: str, timestamp: float | None
    ) -> OutgoingMessage:
        seconds = int(time.time() if timestamp is None else timestamp)
        body = text.encode("utf-8")
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(seconds),
            "webhook-signature": sign(self._key, message_id, seconds, body),
        }
        return OutgoingMessage(message_id, topics, body, headers)
