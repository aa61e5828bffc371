"""``mongodb://host:port/db``: pymongo, one document per subscription.

Documents are ``{name, value, url, expires_at, renewal}`` in the ``subscriptions``
collection (override with ``?collection=...`` in the URL; the database comes
from the URL path, ``skyhooks`` by default). Indexes: unique on
``(name, value, url)``, on ``url``, and a TTL index on ``expires_at`` so the
server deletes a crashed instance's subscriptions by itself. Lookups still
filter on ``expires_at`` because the TTL monitor only runs about once a minute.
``renewal`` is the id of the ``renew`` that last wrote the row (null after an
``add``): a renewal then drops the url's rows that do not carry its own id.

pymongo is imported here, never by ``skyhooks.core`` itself: install it with
``pip install 'skyhooks[mongodb]'``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pymongo
import pymongo.errors
from bson import ObjectId
from pymongo import DeleteMany, UpdateOne
from zope.interface import implementer

from ..errors import StoreError, WouldBlock, map_exceptions
from ..forks import reset_in_child
from ..interfaces import IHookStore
from ..keys import Topic
from ..values import Subscription

__all__ = ["MongoStore"]

_ERRORS: dict[type[BaseException], type[StoreError]] = {pymongo.errors.PyMongoError: StoreError}

#: Without these, pymongo waits 30 s for an unreachable server; a publisher
#: should learn that the store is down in a few seconds and say so.
_DEFAULT_OPTIONS = {"serverSelectionTimeoutMS": "5000"}


@implementer(IHookStore)
class MongoStore:
    """Subscriptions in a MongoDB collection (or anything that speaks its wire protocol)."""

    def __init__(
        self,
        uri: str,
        *,
        database: str | None = None,
        collection: str = "subscriptions",
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(uri)
        options = dict(parse_qsl(parts.query))
        collection = options.pop("collection", collection)
        for key, value in _DEFAULT_OPTIONS.items():
            options.setdefault(key, value)
        self.uri = urlunsplit(parts._replace(query=urlencode(options)))
        self._clock = clock
        # MongoClient connects lazily and is thread-safe, so building it here never blocks.
        self._client: pymongo.MongoClient[Any] = pymongo.MongoClient(self.uri, tz_aware=True)
        db_name = database or parts.path.lstrip("/") or "skyhooks"
        self._collection = self._client[db_name][collection]
        self._indexes_ready = False
        self._indexes_lock = threading.Lock()
        reset_in_child(self)

    def _after_fork(self) -> None:
        # (pymongo resets its own connection pools in a forked child.)
        self._indexes_lock = threading.Lock()  # a thread of the parent's may have held it

    @classmethod
    def from_url(cls, url: str) -> MongoStore:
        return cls(url)

    @property
    def collection(self) -> Any:
        """The pymongo collection, indexes ensured (created once, idempotently)."""
        if not self._indexes_ready:
            with self._indexes_lock, map_exceptions(_ERRORS, "mongodb store creating indexes"):
                if not self._indexes_ready:
                    coll = self._collection
                    coll.create_index([("name", 1), ("value", 1), ("url", 1)], unique=True, name="topic_url")
                    coll.create_index([("url", 1)], name="url")
                    coll.create_index([("expires_at", 1)], expireAfterSeconds=0, name="expires_at_ttl")
                    self._indexes_ready = True
        return self._collection

    def _expiry(self, ttl: float) -> datetime:
        return datetime.fromtimestamp(self._clock() + ttl, tz=timezone.utc)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=timezone.utc)

    @staticmethod
    def _upsert(url: str, topic: Topic, expires_at: datetime, renewal: ObjectId | None = None) -> UpdateOne:
        return UpdateOne(
            {"name": topic.name, "value": topic.value, "url": url},
            {"$set": {"expires_at": expires_at, "renewal": renewal}},
            upsert=True,
        )

    def add(self, url: str, topics: Iterable[Topic], ttl: float) -> None:
        expires_at = self._expiry(ttl)
        ops = [self._upsert(url, topic, expires_at) for topic in topics]
        if ops:
            with map_exceptions(_ERRORS, "mongodb store add"):
                self.collection.bulk_write(ops, ordered=False)

    def remove(self, url: str, topics: Iterable[Topic]) -> None:
        pairs = [{"name": t.name, "value": t.value} for t in topics]
        if pairs:
            with map_exceptions(_ERRORS, "mongodb store remove"):
                self.collection.delete_many({"url": url, "$or": pairs})

    def remove_url(self, url: str) -> int:
        with map_exceptions(_ERRORS, "mongodb store remove_url"):
            return int(self.collection.delete_many({"url": url}).deleted_count)

    def renew(self, url: str, topics: Iterable[Topic], ttl: float) -> None:
        expires_at, renewal = self._expiry(ttl), ObjectId()
        ops: list[Any] = [self._upsert(url, topic, expires_at, renewal) for topic in topics]
        # Then drop what this url no longer listens for: every row of it this renewal did
        # not just stamp. Ordered, so it runs only once every upsert went through; one
        # condition on the url's rows, where listing the topics kept ($nor) cost rows x
        # topics. (Not "expiring earlier": a clock stepped back would keep stale rows.)
        ops.append(DeleteMany({"url": url, "renewal": {"$ne": renewal}}))
        with map_exceptions(_ERRORS, "mongodb store renew"):
            self.collection.bulk_write(ops, ordered=True)

    def lookup(self, topics: Iterable[Topic]) -> dict[str, frozenset[Topic]]:
        pairs = [{"name": t.name, "value": t.value} for t in topics]
        if not pairs:
            return {}
        found: dict[str, set[Topic]] = {}
        query = {"$or": pairs, "expires_at": {"$gt": self._now()}}
        with map_exceptions(_ERRORS, "mongodb store lookup"):
            for doc in self.collection.find(query, {"_id": 0, "name": 1, "value": 1, "url": 1}):
                found.setdefault(doc["url"], set()).add(Topic(doc["name"], doc["value"]))
        return {url: frozenset(matched) for url, matched in found.items()}

    def lookup_nowait(self, topics: Iterable[Topic]) -> dict[str, frozenset[Topic]]:
        raise WouldBlock("a MongoDB lookup is a network round trip")

    #: pymongo waits on sockets and locks, which gevent's patching makes cooperative.
    blocks_natively = False

    def purge(self) -> int:
        with map_exceptions(_ERRORS, "mongodb store purge"):
            return int(self.collection.delete_many({"expires_at": {"$lte": self._now()}}).deleted_count)

    def subscriptions(self, topics: Iterable[Topic] | None = None) -> list[Subscription]:
        query: dict[str, Any] = {"expires_at": {"$gt": self._now()}}
        if topics is not None:
            pairs = [{"name": t.name, "value": t.value} for t in topics]
            if not pairs:
                return []
            query["$or"] = pairs
        with map_exceptions(_ERRORS, "mongodb store subscriptions"):
            docs = list(self.collection.find(query, {"_id": 0}))
        rows = [
            Subscription(Topic(d["name"], d["value"]), d["url"], _as_utc(d["expires_at"]).timestamp())
            for d in docs
        ]
        return sorted(rows, key=lambda row: (row.url, row.topic))

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"MongoStore({self._collection.full_name!r})"


def _as_utc(value: datetime) -> datetime:
    # Some servers hand back naive datetimes even with tz_aware clients; they are UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
