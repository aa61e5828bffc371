"""``redis://``, ``rediss://``, ``redis+cluster://``: redis-py, one sorted set per topic.

URL forms::

    redis://[[user]:password@]host[:port][/db]      one Redis (db 0 by default)
    rediss://...                                    the same over TLS
    redis+cluster://[[user]:password@]host[:port]   a Redis Cluster: any node, the client finds the rest
    rediss+cluster://...                            a Redis Cluster over TLS

Query options: ``prefix`` (the key namespace, default ``skyhooks``; letters,
digits and ``_ . : -``), ``socket_timeout`` and ``socket_connect_timeout``
(seconds), and for TLS ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
``ssl_cert_reqs`` (``none``/``optional``/``required``). Anything else is refused.

The data, for prefix ``P`` (docs/stores.md has the whole story):

- ``P:t:{name=value}``: a sorted set per topic, member the URL, score the unix
  time the subscription expires. A lookup reads the members scored above now.
- ``P:u:{url}``: a sorted set per URL, member ``name=value``, the same score:
  what :meth:`RedisStore.remove_url` and :meth:`RedisStore.renew` need to find
  a URL's topics without scanning.

The braces are Redis Cluster hash tags: every key's slot is chosen by our own
encoding of the topic (or URL), never by a ``{`` that happens to be in a value.
``{``, ``}`` and ``%`` inside them are percent-encoded. Each key also expires
as a whole once its longest-lived member has (``PEXPIRE`` with ``NX``/``GT``,
Redis 7.0 or newer), so a crashed instance's keys vanish without a purge.

redis-py is imported here, never by ``skyhooks.core`` itself: install it with
``pip install 'skyhooks[redis]'`` (add ``hiredis`` and redis-py parses replies
with it).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.cluster
import redis.exceptions
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry
from zope.interface import implementer

from ..errors import ConfigurationError, StoreError, WouldBlock
from ..forks import reset_in_child
from ..interfaces import IHookStore
from ..keys import Topic
from ..values import Subscription

__all__ = ["RedisStore"]

_SCHEMES = {  # scheme -> (cluster, tls)
    "redis": (False, False),
    "rediss": (False, True),
    "redis+cluster": (True, False),
    "rediss+cluster": (True, True),
}

#: The prefix is part of every key and of the SCAN patterns: keeping it to the
#: characters of key names means it can hold neither a hash tag's brace nor a
#: glob character.
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
DEFAULT_PREFIX = "skyhooks"

#: redis-py's defaults (no timeout at all in older releases, ten retries in
#: newer ones) would keep a registry waiting on a Redis that is down or hung.
#: A store call should fail in seconds and say so; the registry's own backoff
#: does the waiting.
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 2.0
#: One quick retry covers a connection the server closed while it sat idle.
#: A timeout is not retried: a server that hangs would only hang twice.
_RETRIES = 1

_CERT_REQS = ("none", "optional", "required")
_TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
_TIMEOUT_OPTIONS = ("socket_timeout", "socket_connect_timeout")

#: A key outlives its longest-lived member by this much, so neither the time a
#: write takes nor clocks a little apart end a live subscription early.
_KEY_LIFE_MARGIN_MS = 1000

#: Keys per pipeline when SCAN walks every topic (purge, subscriptions).
_SCAN_BATCH = 1000

_ENCODE = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})
_DECODE = re.compile(r"%(25|7B|7D)")
_DECODED = {"25": "%", "7B": "{", "7D": "}"}


def _tag(text: str) -> str:
    """*text* as a hash tag's content: without the braces that would end it early."""
    return "{" + text.translate(_ENCODE) + "}"


def _untag(text: str) -> str:
    return _DECODE.sub(lambda match: _DECODED[match.group(1)], text)


def _member(topic: Topic) -> str:
    # Names never contain "=", so the first one splits a member back into its topic.
    return f"{topic.name}={topic.value}"


def _topic_of(member: str) -> Topic:
    name, _, value = member.partition("=")
    return Topic(name, value)


@dataclass(frozen=True)
class _Config:
    """A parsed store URL: where to connect, and the URL to show (no password)."""

    shown: str
    cluster: bool
    prefix: str
    connection: dict[str, Any] = field(default_factory=dict)


def _parse(url: str, prefix: str | None = None) -> _Config:
    """*url* checked and taken apart; *prefix*, if given, instead of the URL's."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError as exc:
        raise ConfigurationError(f"redis store URL is malformed ({exc}); see docs/stores.md") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"redis store URLs start with {', '.join(s + '://' for s in _SCHEMES)}, not {scheme}://"
        )
    cluster, tls = _SCHEMES[scheme]
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    userinfo = (parts.username or "") + (":***" if password is not None else "")
    shown_host = f"[{host}]" if ":" in host else host
    shown = f"{scheme}://{userinfo + '@' if userinfo else ''}{shown_host}:{port}{parts.path}"

    def refuse(reason: str) -> ConfigurationError:
        return ConfigurationError(f"redis store {shown}: {reason}")

    path = parts.path.strip("/")
    if path and not (path.isascii() and path.isdigit()):
        raise refuse(f"the database must be a number (redis://host:port/0), not {path!r}")
    db = int(path) if path else 0
    if cluster and db != 0:
        raise refuse("a Redis Cluster has only database 0; drop the /db from the URL")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = prefix if prefix is not None else options.pop("prefix", DEFAULT_PREFIX)
    options.pop("prefix", None)
    if not _PREFIX.fullmatch(prefix):
        raise refuse(f"prefix {prefix!r} must be 1-64 letters, digits or _ . : -")
    if prefix != DEFAULT_PREFIX:
        shown += f"?prefix={prefix}"
    connection: dict[str, Any] = {
        "host": host,
        "port": port,
        "username": user,
        "password": password,
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "decode_responses": True,
    }
    if not cluster:
        connection["db"] = db
    for name in _TIMEOUT_OPTIONS:
        if name in options:
            text = options.pop(name)
            try:
                seconds = float(text)
            except ValueError:
                seconds = math.nan
            if not seconds > 0 or math.isinf(seconds):
                raise refuse(f"{name} is a number of seconds above 0, not {text!r}")
            connection[name] = seconds
    if tls:
        connection["ssl"] = True
        for name in _TLS_OPTIONS:
            if name in options:
                connection[name] = options.pop(name)
        if connection.get("ssl_cert_reqs", "required") not in _CERT_REQS:
            raise refuse(f"ssl_cert_reqs is one of {', '.join(_CERT_REQS)}")
    if options:
        known = ["prefix", *_TIMEOUT_OPTIONS, *(_TLS_OPTIONS if tls else ())]
        raise refuse(f"unknown option(s) {', '.join(sorted(options))}; known: {', '.join(known)}")
    return _Config(shown, cluster, prefix, connection)


def _describe(exc: BaseException) -> str:
    """The driver's message, with what to do about the failures an operator causes."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, redis.exceptions.AuthenticationError) or "NOAUTH" in text or "WRONGPASS" in text:
        return f"{text} (check the user and password in the store URL)"
    if "cluster mode is not enabled" in text.lower() or "cluster support disabled" in text.lower():
        return f"{text} (this is not a Redis Cluster node: use redis:// for a single Redis)"
    return text


class _Batch:
    """The commands of one write, each with the key that routes it in a cluster."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []

    def add(self, key: str, command: str, *args: Any, **options: Any) -> None:
        """Queue ``pipeline.<command>(key, *args, **options)``."""
        self.commands.append((key, command, args, options))

    def extend_life(self, key: str, life_ms: int) -> None:
        # A key made by this write has no expiry (NX gives it one); an existing
        # key's is only ever pushed later (GT), so it never cuts short a
        # longer-lived subscriber's.
        self.add(key, "pexpire", life_ms, nx=True)
        self.add(key, "pexpire", life_ms, gt=True)


@implementer(IHookStore)
class RedisStore:
    """Subscriptions in Redis or a Redis Cluster, each expiring on its own.

    ::

        store = RedisStore("redis://:secret@10.0.0.9:6379/0?prefix=myapp")
        store.add("http://10.0.0.5:8001/skyhooks", {Topic("account_id", "42")}, ttl=90)

    Nothing connects until the first call, so making a store never blocks; an
    unreachable server, a wrong password or a ``redis+cluster://`` URL naming a
    node that is not in a cluster is a :class:`StoreError` from that call, naming
    the URL without its password. A malformed URL is a ``ConfigurationError``
    at once. *prefix*, when given, overrides the URL's ``prefix`` option;
    *clock* (unix seconds) is injectable so expiry can be tested.

    One Redis runs each write as a ``MULTI``/``EXEC`` transaction. In a cluster
    a write is one pipeline per node, and what a node that is down misses is
    made good by the retry (see ``_run``). A lookup is one round trip per node
    holding any of its topics; :meth:`purge` and :meth:`subscriptions` walk
    the keys with SCAN, so they need every node up.
    """

    #: redis-py waits on sockets, which gevent's patching makes cooperative.
    blocks_natively = False

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        config = _parse(url, prefix)
        #: The store's URL as it is safe to show: the password is ``***``.
        self.url = config.shown
        self.prefix = config.prefix
        self.cluster = config.cluster
        self._config = config
        self._clock = clock
        self._topic_prefix = f"{self.prefix}:t:"
        self._url_prefix = f"{self.prefix}:u:"
        self._client: Any = None
        self._after_fork()
        reset_in_child(self)

    def _after_fork(self) -> None:
        # (redis-py's connection pools notice a fork by themselves and reconnect.)
        self._client_lock = threading.Lock()  # a thread of the parent's may have held it

    @staticmethod
    def _retry() -> Retry:
        return Retry(
            EqualJitterBackoff(cap=0.5, base=0.05),
            _RETRIES,
            supported_errors=(redis.exceptions.ConnectionError,),
        )

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        return cls(url)

    # -- keys ---------------------------------------------------------------

    def topic_key(self, topic: Topic) -> str:
        """The sorted set of *topic*'s subscribers (member url, score expiry)."""
        return self._topic_prefix + _tag(_member(topic))

    def url_key(self, url: str) -> str:
        """The sorted set of *url*'s topics (member ``name=value``, score expiry)."""
        return self._url_prefix + _tag(url)

    def _topic_from_key(self, key: str) -> Topic:
        return _topic_of(_untag(key[len(self._topic_prefix) + 1 : -1]))

    # -- plumbing -----------------------------------------------------------

    @property
    def client(self) -> Any:
        """The redis-py client (``redis.Redis`` or ``redis.cluster.RedisCluster``).

        Made on first use, under a lock: a cluster client reads the cluster's
        layout when it is made, which is I/O, and a failure then leaves nothing
        behind, so the next call tries again."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    kind = redis.cluster.RedisCluster if self.cluster else redis.Redis
                    self._client = kind(**self._config.connection, retry=self._retry())
                client = self._client
        return client

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
            raise StoreError(f"redis store {self.url} {what} failed: {_describe(exc)}") from exc

    def _run(self, batch: _Batch) -> list[Any]:
        """Run one write's commands; their replies, in order.

        One Redis runs them as a ``MULTI``/``EXEC`` transaction: all or nothing.
        In a cluster a topic's key and a URL's key live in different slots, so
        the commands go out in one pipeline per node, and a node that is down
        fails only its own: the writes to the live nodes still land (an
        instance with one topic on a dead node keeps its other topics alive),
        and the first failure is raised afterwards, so the caller retries.

        Running half a write is safe because every command is idempotent: ZADD
        sets an absolute score, PEXPIRE NX/GT only ever lengthens, ZREM of a
        missing member does nothing. The caller's retry (the registry retries
        every failed write, and renews everything every ttl/3) lands on the
        same state. A subscription a half-done removal left behind is no longer
        renewed, so it expires by its score within one ttl; lookups ignore it
        from then on, and a publisher that reaches the instance meanwhile is
        told ``notified: 0`` and prunes it.
        """
        if not self.cluster:
            pipe = self.client.pipeline(transaction=True)
            for key, command, args, options in batch.commands:
                getattr(pipe, command)(key, *args, **options)
            return list(pipe.execute())
        by_node: dict[str, list[int]] = {}
        for position, (key, _, _, _) in enumerate(batch.commands):
            by_node.setdefault(self.client.get_node_from_key(key).name, []).append(position)
        replies: list[Any] = [None] * len(batch.commands)
        failure: BaseException | None = None
        for positions in by_node.values():
            pipe = self.client.pipeline(transaction=False)
            for position in positions:
                key, command, args, options = batch.commands[position]
                getattr(pipe, command)(key, *args, **options)
            try:
                answers = pipe.execute()
            except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
                failure = failure or exc
                continue
            for position, answer in zip(positions, answers, strict=True):
                replies[position] = answer
        if failure is not None:
            raise failure
        return replies

    def _key_life_ms(self, ttl: float) -> int:
        return max(math.ceil(ttl * 1000), 1) + _KEY_LIFE_MARGIN_MS

    def _write(self, batch: _Batch, url: str, topics: Iterable[Topic], ttl: float) -> None:
        """Subscribe *url* to *topics*: the URL's key first, then each topic's."""
        expires_at = self._clock() + ttl
        life_ms = self._key_life_ms(ttl)
        index = self.url_key(url)
        batch.add(index, "zadd", {_member(topic): expires_at for topic in topics})
        batch.extend_life(index, life_ms)
        for topic in topics:
            key = self.topic_key(topic)
            batch.add(key, "zadd", {url: expires_at})
            batch.extend_life(key, life_ms)

    def _scan(self, prefix: str) -> Iterator[list[str]]:
        """Every key under *prefix*, in batches, by SCAN (never KEYS, which stops
        the server for as long as it runs); in a cluster, on every primary."""
        batch: list[str] = []
        for key in self.client.scan_iter(match=prefix + "{*", count=_SCAN_BATCH, _type="zset"):
            batch.append(key)
            if len(batch) >= _SCAN_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- IHookStore ---------------------------------------------------------

    def add(self, url: str, topics: Iterable[Topic], ttl: float) -> None:
        wanted = set(topics)
        if not wanted:
            return
        batch = _Batch()
        self._write(batch, url, wanted, ttl)
        with self._errors("add"):
            self._run(batch)

    def remove(self, url: str, topics: Iterable[Topic]) -> None:
        members = {_member(topic): topic for topic in topics}
        if not members:
            return
        batch = _Batch()
        for topic in members.values():
            batch.add(self.topic_key(topic), "zrem", url)
        batch.add(self.url_key(url), "zrem", *members)
        with self._errors("remove"):
            self._run(batch)

    def remove_url(self, url: str) -> int:
        index = self.url_key(url)
        with self._errors("remove_url"):
            members = self.client.zrange(index, 0, -1)
            if not members:
                return 0
            batch = _Batch()
            for member in members:
                batch.add(self.topic_key(_topic_of(member)), "zrem", url)
            # Only the members read: a topic added meanwhile keeps its entry.
            batch.add(index, "zrem", *members)
            replies = self._run(batch)
        return sum(int(removed) for removed in replies[: len(members)])

    def renew(self, url: str, topics: Iterable[Topic], ttl: float) -> None:
        wanted = {_member(topic): topic for topic in topics}
        index = self.url_key(url)
        with self._errors("renew"):
            unread: BaseException | None = None
            try:
                current = self.client.zrange(index, 0, -1)
            except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
                if not self.cluster:
                    raise
                # The URL's key is on a node that is down: renew what the live
                # nodes hold anyway, so those subscriptions do not expire with it;
                # dropping stale topics waits for the retry.
                current, unread = [], exc
            stale = [member for member in current if member not in wanted]
            batch = _Batch()
            if wanted:
                self._write(batch, url, wanted.values(), ttl)
            for member in stale:
                batch.add(self.topic_key(_topic_of(member)), "zrem", url)
            if stale:
                batch.add(index, "zrem", *stale)
            if batch.commands:
                self._run(batch)
            if unread is not None:
                raise unread

    def lookup(self, topics: Iterable[Topic]) -> dict[str, frozenset[Topic]]:
        wanted = list(set(topics))
        if not wanted:
            return {}
        low = f"({self._clock()!r}"  # "(": strictly later than now
        with self._errors("lookup"):
            if len(wanted) == 1:  # most messages name one key: no pipeline to build
                replies = [self.client.zrangebyscore(self.topic_key(wanted[0]), low, "+inf")]
            else:
                # One round trip; in a cluster, one per node holding any of the
                # keys, written to every node before any reply is read.
                pipe = self.client.pipeline(transaction=False)
                for topic in wanted:
                    pipe.zrangebyscore(self.topic_key(topic), low, "+inf")
                replies = pipe.execute()
        found: dict[str, set[Topic]] = {}
        for topic, urls in zip(wanted, replies, strict=True):
            for url in urls:
                found.setdefault(url, set()).add(topic)
        return {url: frozenset(matched) for url, matched in found.items()}

    def lookup_nowait(self, topics: Iterable[Topic]) -> dict[str, frozenset[Topic]]:
        raise WouldBlock("a Redis lookup is a network round trip")

    def purge(self) -> int:
        now = repr(self._clock())
        removed = 0
        with self._errors("purge"):
            for prefix, counted in ((self._topic_prefix, True), (self._url_prefix, False)):
                for batch in self._scan(prefix):
                    pipe = self.client.pipeline(transaction=False)
                    for key in batch:
                        # A sorted set left empty is deleted by Redis itself.
                        pipe.zremrangebyscore(key, "-inf", now)
                    replies = pipe.execute()
                    if counted:  # the URLs' keys index the same subscriptions
                        removed += sum(int(count) for count in replies)
        return removed

    def subscriptions(self, topics: Iterable[Topic] | None = None) -> list[Subscription]:
        low = f"({self._clock()!r}"
        rows: list[Subscription] = []
        with self._errors("subscriptions"):
            if topics is None:
                batches: Iterable[list[str]] = self._scan(self._topic_prefix)
            else:
                batches = [[self.topic_key(topic) for topic in set(topics)]]
            for batch in batches:
                if not batch:
                    continue
                pipe = self.client.pipeline(transaction=False)
                for key in batch:
                    pipe.zrangebyscore(key, low, "+inf", withscores=True)
                for key, members in zip(batch, pipe.execute(), strict=True):
                    topic = self._topic_from_key(key)
                    rows.extend(Subscription(topic, url, float(score)) for url, score in members)
        return sorted(rows, key=lambda row: (row.url, row.topic))

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r})"
