"""Incoming requests, sans-IO: ``(method, headers, body)`` to verified messages, or a refusal.

:meth:`Verifier.parse` runs the checks cheapest-first and raises the
:class:`~skyhooks.core.errors.RequestError` whose ``status`` the protocol
names (``docs/protocol.md``): 405 not POST, 413 over the size limit, 415 not
JSON, 401 missing or bad signature or stale timestamp, 400 anything
malformed behind a valid signature.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..errors import (
    BadRequest,
    InvalidKeysError,
    MethodNotAllowed,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from ..keys import Topic, checked_topics
from ..values import Message, trusted_message
from .outgoing import MAX_BATCH
from .signing import MAX_ID_LENGTH, SigningKey, verify

__all__ = ["DEFAULT_MAX_BODY_SIZE", "REQUEST_HEADERS", "ParsedMessage", "ParsedRequest", "Verifier"]

DEFAULT_MAX_BODY_SIZE = 1024 * 1024
_SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
#: The only request headers :meth:`Verifier.parse` reads (in any case): an
#: adapter may pass just these rather than copy every header.
REQUEST_HEADERS = ("content-type", *_SIGNATURE_HEADERS)


class ParsedMessage(NamedTuple):
    """A verified incoming message and the topics it addresses."""

    message: Message
    topics: frozenset[Topic]


class ParsedRequest(NamedTuple):
    """What one verified request carried: one message, or several (``batch``)."""

    messages: tuple[ParsedMessage, ...]
    batch: bool = False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Built once (json.loads with an option builds a decoder per call); NaN and Infinity are refused.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class Verifier:
    """Checks incoming requests against one secret. Thread-safe (it holds only the key)."""

    def __init__(
        self,
        secret: str | bytes,
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_body_size < 1:
            raise ValueError("max_body_size is a number of bytes, at least 1")
        self._key = SigningKey(secret)
        self.max_body_size = max_body_size
        self._clock = clock

    def parse(self, method: str, headers: Mapping[str, str], body: bytes) -> ParsedRequest:
        """Verify and decode one request; *headers* may use any case."""
        if method != "POST" and method.upper() != "POST":
            raise MethodNotAllowed(f"method {method} not allowed; webhooks are POSTed")
        if len(body) > self.max_body_size:
            raise PayloadTooLarge(f"body of {len(body)} bytes is over the limit of {self.max_body_size}")
        get = headers.get
        media_type = get("content-type")
        message_id = get("webhook-id")
        timestamp = get("webhook-timestamp")
        signature = get("webhook-signature")
        if media_type is None or message_id is None or timestamp is None or signature is None:
            # Names in other cases (the adapters' readers pass lower case, and only these four).
            lower = {name.lower(): value for name, value in headers.items()}
            media_type, message_id, timestamp, signature = (lower.get(name) for name in REQUEST_HEADERS)
        if media_type != "application/json":  # the usual value needs no parsing
            media_type = (media_type or "").split(";", 1)[0].strip().lower()
            if media_type != "application/json":
                raise UnsupportedMediaType(
                    f"content-type must be application/json, not {media_type or 'missing'!r}"
                )
        if not (message_id and timestamp and signature):
            given = dict(zip(_SIGNATURE_HEADERS, (message_id, timestamp, signature), strict=True))
            missing = [name for name, value in given.items() if not value]
            raise Unauthorized(f"unsigned request: missing {', '.join(missing)} header")
        verify(self._key, message_id, timestamp, signature, body, self._clock)
        try:
            payload = _DECODER.decode(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadRequest("body is not UTF-8") from exc
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"body is not valid JSON: {str(exc)[:200]}") from exc
        if isinstance(payload, dict) and "messages" in payload and "keys" not in payload:
            return ParsedRequest(_batch_messages(payload["messages"]), batch=True)
        return ParsedRequest((_message(payload, message_id),))


def _message(payload: Any, message_id: str) -> ParsedMessage:
    if not isinstance(payload, dict) or "keys" not in payload:
        raise BadRequest('body must be a JSON object like {"keys": {...}, "data": ...}')
    try:
        keys, topics = checked_topics(payload["keys"])
    except InvalidKeysError as exc:
        raise BadRequest(str(exc)) from exc
    return ParsedMessage(trusted_message(keys, payload.get("data"), message_id), topics)


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
