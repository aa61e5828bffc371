"""Keys and topics: the rules of docs/protocol.md ("Keys"), in one place.

A *key* is a name and a value (``account_id=42``); a message or a subscription
names a set of keys; each ``(name, value)`` pair is a :class:`Topic`, the unit of
subscription. Values compare as strings, so ``42`` and ``"42"`` address the same
subscribers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .errors import InvalidKeysError

__all__ = [
    "MAX_KEYS",
    "MAX_NAME_LENGTH",
    "MAX_VALUE_LENGTH",
    "Topic",
    "checked_topics",
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


class Topic(NamedTuple):
    """One ``(name, value)`` pair, the value already turned into a string.

    Immutable, hashable and ordered like the frozen dataclasses elsewhere, but
    a named tuple: topics are hashed on every path (each lookup, each match
    of an incoming message against the callback table, each set of topics), and
    a tuple's hash and equality run in C, six times faster than a dataclass's
    generated ones. The one difference: a topic equals the plain tuple
    ``(name, value)``.
    """

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


def checked_topics(keys: object) -> tuple[Mapping[str, KeyValue], frozenset[Topic]]:
    """:func:`validate_keys` and :func:`topics_of_valid` in one: the keys as
    checked, and their topics. Raises :class:`InvalidKeysError` as validate_keys.

    Most messages name one key, and the same few over and over (an account's
    progress, say): those answers are remembered, so a repeat costs one dict
    lookup instead of the checks and a new Topic (about 3 us of a webhook's 15
    in the core). Only a plain one-key dict whose value is exactly a str or an
    int takes that path, so a bool (an int to ``==`` and ``hash``) never
    matches a remembered int. The keys handed back are then *keys* itself,
    not a copy: callers only read them.
    """
    if type(keys) is dict and len(keys) == 1:
        for pair in keys.items():  # the one pair, without unpacking machinery
            kind = type(pair[1])
            if kind is str or kind is int:
                topics = _ONE_KEY.get(pair)
                if topics is not None:
                    return keys, topics
    checked = validate_keys(keys)
    topics = topics_of_valid(checked)
    if len(checked) == 1:
        for pair in checked.items():
            if type(pair[1]) in (str, int):
                if len(_ONE_KEY) >= _ONE_KEY_SIZE:
                    _ONE_KEY.clear()  # bounded: start over rather than grow or track age
                _ONE_KEY[pair] = topics
    return checked, topics


#: One-key sets seen lately, (name, value) -> their topics (see checked_topics).
_ONE_KEY: dict[tuple[str, KeyValue], frozenset[Topic]] = {}
_ONE_KEY_SIZE = 4096


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
