"""Frozen value objects that cross the public API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .keys import KeyValue, Topic

__all__ = ["DeliveryReport", "Message", "Subscription"]


@dataclass(frozen=True)
class Message:
    """What a callback receives.

    ``keys`` are the message's keys as the publisher sent them, ``data`` the
    decoded JSON, ``id`` the ``webhook-id`` (the same on every retry).
    """

    keys: Mapping[str, KeyValue]
    data: Any
    id: str


_new_object = object.__new__


def trusted_message(keys: Mapping[str, KeyValue], data: Any, message_id: str) -> Message:
    """``Message(keys, data, message_id)`` for the parser, which has checked every
    field: half the time of the frozen ``__init__`` (three ``object.__setattr__``
    calls), once per message received. The result is an ordinary Message."""
    message = _new_object(Message)
    fields = message.__dict__
    fields["keys"] = keys
    fields["data"] = data
    fields["id"] = message_id
    return message


@dataclass(frozen=True)
class Subscription:
    """One row of the store: *url* listens for *topic* until *expires_at* (unix seconds)."""

    topic: Topic
    url: str
    expires_at: float


@dataclass(frozen=True)
class DeliveryReport:
    """What happened to one ``notify``.

    - ``message_id``: the ``webhook-id`` sent to every URL.
    - ``urls``: the URLs targeted (those the store listed for the keys).
    - ``delivered``: the URLs that answered 2xx.
    - ``failed``: ``{url: reason}`` for every URL that did not.
    - ``notified``: local callbacks invoked across all instances; 0 means nobody
      was listening.
    - ``pruned``: URLs removed from the store as dead.

    Every targeted URL is either in ``delivered`` or in ``failed``: nothing is
    dropped without a reason.
    """

    message_id: str
    urls: frozenset[str] = frozenset()
    delivered: frozenset[str] = frozenset()
    failed: Mapping[str, str] = field(default_factory=dict)
    notified: int = 0
    pruned: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        """True when every targeted URL accepted the message."""
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (sorted lists), for logs and command-line output."""
        return {
            "message_id": self.message_id,
            "urls": sorted(self.urls),
            "delivered": sorted(self.delivered),
            "failed": dict(sorted(self.failed.items())),
            "notified": self.notified,
            "pruned": sorted(self.pruned),
        }
