"""``memory://``: one process only; tests and single-process apps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from zope.interface import implementer

from ..forks import reset_in_child
from ..interfaces import IHookStore
from ..keys import Topic
from ..values import Subscription

__all__ = ["MemoryStore"]


@implementer(IHookStore)
class MemoryStore:
    """A dict behind a lock. ``clock`` is injectable so expiry can be tested."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # topic -> {url: expires_at}; the url -> topics index makes remove_url cheap.
        self._by_topic: dict[Topic, dict[str, float]] = {}
        self._by_url: dict[str, set[Topic]] = {}
        reset_in_child(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a thread of the parent's may have held it

    @classmethod
    def from_url(cls, url: str) -> MemoryStore:
        return cls()

    def add(self, url: str, topics: Iterable[Topic], ttl: float) -> None:
        expires_at = self._clock() + ttl
        with self._lock:
            for topic in topics:
                self._by_topic.setdefault(topic, {})[url] = expires_at
                self._by_url.setdefault(url, set()).add(topic)

    def remove(self, url: str, topics: Iterable[Topic]) -> None:
        with self._lock:
            for topic in topics:
                self._discard(url, topic)

    def remove_url(self, url: str) -> int:
        with self._lock:
            topics = self._by_url.get(url, set()).copy()
            for topic in topics:
                self._discard(url, topic)
            return len(topics)

    def renew(self, url: str, topics: Iterable[Topic], ttl: float) -> None:
        wanted = set(topics)
        expires_at = self._clock() + ttl
        with self._lock:
            for topic in self._by_url.get(url, set()) - wanted:
                self._discard(url, topic)
            for topic in wanted:
                self._by_topic.setdefault(topic, {})[url] = expires_at
            if wanted:
                self._by_url[url] = wanted

    def lookup(self, topics: Iterable[Topic]) -> dict[str, frozenset[Topic]]:
        now = self._clock()
        found: dict[str, set[Topic]] = {}
        with self._lock:
            for topic in topics:
                for url, expires_at in self._by_topic.get(topic, {}).items():
                    if expires_at > now:
                        found.setdefault(url, set()).add(topic)
        return {url: frozenset(matched) for url, matched in found.items()}

    # Never waits but for a lock held for microseconds: fine on an event loop.
    lookup_nowait = lookup  # a dict and a lock held for microseconds: never waits
    blocks_natively = False

    def purge(self) -> int:
        now = self._clock()
        with self._lock:
            expired = [
                (url, topic)
                for topic, urls in self._by_topic.items()
                for url, expires_at in urls.items()
                if expires_at <= now
            ]
            for url, topic in expired:
                self._discard(url, topic)
        return len(expired)

    def subscriptions(self, topics: Iterable[Topic] | None = None) -> list[Subscription]:
        now = self._clock()
        with self._lock:
            wanted = self._by_topic.keys() if topics is None else set(topics)
            rows = [
                Subscription(topic, url, expires_at)
                for topic in wanted
                for url, expires_at in self._by_topic.get(topic, {}).items()
                if expires_at > now
            ]
        return sorted(rows, key=lambda row: (row.url, row.topic))

    def close(self) -> None:
        with self._lock:
            self._by_topic.clear()
            self._by_url.clear()

    def _discard(self, url: str, topic: Topic) -> None:
        urls = self._by_topic.get(topic)
        if urls is not None:
            urls.pop(url, None)
            if not urls:
                del self._by_topic[topic]
        url_topics = self._by_url.get(url)
        if url_topics is not None:
            url_topics.discard(topic)
            if not url_topics:
                del self._by_url[url]
