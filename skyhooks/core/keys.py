"""Keys and topics: the rules of DESIGN.md, in one place.

A *key* is a name and a value (``account_id=42``); a message or a subscription
names a set of keys; each ``(name, value)`` pair is a :class:`Topic`, the unit of
subscription. Values compare as strings, so ``42`` and ``"42"`` address the same
subscribers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidKeysError

__all__ = [
    "MAX_KEYS",
    "MAX_NAME_LENGTH",
    "MAX_VALUE_LENGTH",
    "Topic",
    "topics_of",
    "topics_of_valid",
    "validate_keys",
]

MAX_NAME_LENGTH = 64
MAX_VALUE_LENGTH = 256
#: More keys than this in one message or registration is refused: it bounds the
#: work a single (possibly hostile) request can cause in the store and the table.
MAX_KEYS = 64

_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

KeyValue = str | int
Keys = Mapping[str, KeyValue]


@dataclass(frozen=True, order=True)
class Topic:
    """One ``(name, value)`` pair, the value already turned into a string."""

    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


def validate_keys(keys: object) -> dict[str, KeyValue]:
    """Check *keys* against the rules and return them as a plain dict.

    Raises :class:`InvalidKeysError` naming the offending key and the rule.
    """
    if not isinstance(keys, Mapping):
        raise InvalidKeysError(f"keys must be a mapping of name to value, not {type(keys).__name__}")
    if not keys:
        raise InvalidKeysError("keys must name at least one key, e.g. {'account_id': 42}")
    if len(keys) > MAX_KEYS:
        raise InvalidKeysError(f"at most {MAX_KEYS} keys per message or registration, got {len(keys)}")
    checked: dict[str, KeyValue] = {}
    for name, value in keys.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidKeysError(
                f"key name {name!r} is invalid: names are 1-{MAX_NAME_LENGTH} characters of "
                "letters, digits and _ . : -"
            )
        # bool is an int subclass, but True and 1 addressing the same subscribers
        # would surprise everyone, so it is refused outright.
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InvalidKeysError(
                f"key {name!r} has a {type(value).__name__} value; values must be str or int"
            )
        text = _as_text(value)
        if len(text) > MAX_VALUE_LENGTH:
            raise InvalidKeysError(f"key {name!r} has a value longer than {MAX_VALUE_LENGTH} characters")
        if not text.isascii() and not _encodable(text):
            # A lone surrogate is a str but not text: no store, and no other
            # receiver, can encode it, so refuse it here rather than fail later.
            raise InvalidKeysError(f"key {name!r} has a value that is not valid Unicode text")
        checked[name] = value
    return checked


def topics_of(keys: Keys) -> frozenset[Topic]:
    """The topics *keys* name, after :func:`validate_keys`."""
    return frozenset(Topic(name, _as_text(value)) for name, value in validate_keys(keys).items())


def topics_of_valid(keys: Mapping[str, KeyValue]) -> frozenset[Topic]:
    """:func:`topics_of` for keys that already passed :func:`validate_keys`."""
    return frozenset([Topic(name, _as_text(value)) for name, value in keys.items()])


def topics_from_pairs(pairs: Iterable[tuple[str, str]]) -> frozenset[Topic]:
    """Topics from already-stored ``(name, value)`` pairs (no validation)."""
    return frozenset(Topic(name, value) for name, value in pairs)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    # int -> str can raise ValueError past sys.int_info.str_digits_check_threshold;
    # such a value is far over the length limit anyway.
    try:
        return str(value)
    except ValueError:
        return "9" * (MAX_VALUE_LENGTH + 1)
