"""The local callback table of one instance.

Pure data structure, no I/O: it answers which topics became live (their first
callback) or dead (their last), which the registry turns into store writes, and
which callbacks a message reaches, each callback once per message however many
of its topics the message names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .keys import Topic

__all__ = ["Callback", "CallbackTable"]

Callback = Callable[[Any], Any]


class CallbackTable:
    """Callbacks per topic, with a count per (topic, callback).

    Registering the same callback twice for a topic needs two unregisters, like
    nested ``acquire``/``release``; unregistering a callback that is not there
    is a no-op, so cleanup code may run twice safely.
    """

    def __init__(self) -> None:
        self._by_topic: dict[Topic, dict[Callback, int]] = {}

    def add(self, topics: Iterable[Topic], callback: Callback) -> list[Topic]:
        """Register *callback* under *topics*; return the topics that became live."""
        live = []
        for topic in topics:
            callbacks = self._by_topic.get(topic)
            if callbacks is None:
                callbacks = self._by_topic[topic] = {}
                live.append(topic)
            callbacks[callback] = callbacks.get(callback, 0) + 1
        return live

    def remove(self, topics: Iterable[Topic], callback: Callback) -> list[Topic]:
        """Unregister *callback* from *topics*; return the topics that became dead."""
        dead = []
        for topic in topics:
            callbacks = self._by_topic.get(topic)
            if callbacks is None or callback not in callbacks:
                continue
            if callbacks[callback] > 1:
                callbacks[callback] -= 1
                continue
            del callbacks[callback]
            if not callbacks:
                del self._by_topic[topic]
                dead.append(topic)
        return dead

    def match(self, topics: Iterable[Topic]) -> list[Callback]:
        """The callbacks registered under any of *topics*, each once, in registration order."""
        if isinstance(topics, frozenset) and len(topics) == 1:
            # The usual message names one key: nothing to merge.
            (topic,) = topics
            return list(self._by_topic.get(topic, ()))
        found: dict[Callback, None] = {}
        for topic in topics:
            callbacks = self._by_topic.get(topic)
            if callbacks:
                found.update(dict.fromkeys(callbacks))
        return list(found)

    def topics(self) -> frozenset[Topic]:
        """Every live topic."""
        return frozenset(self._by_topic)

    def __contains__(self, topic: object) -> bool:
        return topic in self._by_topic

    def __len__(self) -> int:
        """The number of (topic, callback) registrations."""
        return sum(len(callbacks) for callbacks in self._by_topic.values())
