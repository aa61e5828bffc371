"""The publisher logic every publisher shares; adapters add only how effects are performed."""

from __future__ import annotations

import abc
import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from zope.interface import Invalid
from zope.interface.verify import verifyObject

from .delivery import (
    Call,
    Coalescer,
    Effect,
    Flow,
    Gather,
    HTTPResult,
    ITransport,
    RetryPolicy,
    Send,
    Sleep,
    Wait,
    notify_flow,
    run_sync,
)
from .delivery.notify import Targets
from .errors import ConfigurationError, WouldBlock
from .forks import reset_in_child
from .interfaces import HookStore
from .keys import Keys, Topic
from .stores import open_store
from .urls import UrlPolicy
from .values import DeliveryReport
from .wire import EncodedMessage, Signer

__all__ = ["BasePublisher", "SyncPublisher"]

T = TypeVar("T")


class BasePublisher(abc.ABC):
    """Holds the store, the signer and the policies; builds notification flows.

    Subclasses expose ``notify(keys, data)`` in their idiom (a blocking call, a
    coroutine, a Deferred) by running :meth:`_flow` with
    :func:`~skyhooks.core.delivery.run_sync` or
    :func:`~skyhooks.core.delivery.run_async` and :meth:`_perform`, fill in
    the hooks that perform one effect each, and make the default
    :class:`~skyhooks.core.delivery.ITransport` (their framework's HTTP client)
    in :meth:`_default_transport`. ``transport`` replaces it: an in-memory one
    in tests (:class:`skyhooks.testing.MemoryTransport`), or one of your own.

    ``max_in_flight`` bounds the POSTs in flight to one instance; messages for
    an instance at that bound wait and leave together, as one batch, when one
    of its POSTs finishes (see :mod:`skyhooks.core.delivery.coalescer`). ``0`` turns this
    off: every message then gets POSTs of its own, however many are in flight.
    """

    def __init__(
        self,
        store: Any,
        secret: str | bytes,
        *,
        transport: Any = None,
        retry: RetryPolicy | None = None,
        concurrency: int = 32,
        url_policy: UrlPolicy | None = None,
        lookup_cache: float = 0.0,
        max_in_flight: int = 2,
    ) -> None:
        if max_in_flight < 0:
            raise ValueError("max_in_flight is a number of POSTs per instance, or 0 for no limit")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lookup_cache < 0:
            raise ValueError("lookup_cache is a number of seconds, 0 to look up every message")
        self.store = open_store(store)
        # Off by default: a cached lookup does not see a listener that registered
        # within the last `lookup_cache` seconds, which a caller may have awaited.
        self._targets: Targets = _LookupCache(self.store, lookup_cache) if lookup_cache else self.store
        # A store opened here from a URL is ours to close; one handed in is not.
        self._owns_store = isinstance(store, str)
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.url_policy = url_policy or UrlPolicy()
        # URL parsing costs tens of microseconds per URL per message, and the set of
        # listening URLs changes slowly: remember the verdicts.
        self._refusal = functools.lru_cache(maxsize=4096)(self.url_policy.refusal)
        self._signer = Signer(secret)
        # Two POSTs in flight per instance keep the pipe busy while one reply is
        # on its way; more buy little, because an instance's server costs about
        # the same per request whatever it carries, and what waits goes as one
        # batch (benchmarks/RESULTS.md has the figures).
        self.max_in_flight = max_in_flight
        self._coalescer = Coalescer(max_in_flight, self._new_waiter, self._linger) if max_in_flight else None
        if transport is None:
            transport = self._default_transport()
        elif not ITransport.providedBy(transport):
            raise ConfigurationError(
                f"{transport!r} is not a transport: declare its class with "
                "@implementer(skyhooks.core.delivery.ITransport)"
            )
        else:
            try:
                verifyObject(ITransport, transport)
            except Invalid as exc:
                raise ConfigurationError(f"{transport!r} breaks the ITransport contract: {exc}") from exc
        self.transport = transport

    def _flow(self, messages: Iterable[tuple[Keys, Any]]) -> Flow[list[DeliveryReport]]:
        # Encoding happens now, not when the flow first runs, so bad keys or data
        # raise from notify() itself, before anything is looked up or sent.
        encoded = [self._signer.encode(keys, data) for keys, data in messages]
        if not encoded:
            raise ValueError("nothing to publish: give at least one (keys, data) pair")
        return self._flow_of(encoded)

    def _flow_of(self, encoded: Sequence[EncodedMessage]) -> Flow[list[DeliveryReport]]:
        """The notification flow of messages already encoded (by this or an equal Signer)."""
        return notify_flow(
            self._targets, encoded, self._signer, self.retry, self.concurrency, self._refusal, self._coalescer
        )

    def _perform(self, effect: Effect) -> Any:
        """Route one effect to the hook that performs it."""
        if isinstance(effect, Send):
            result = self.transport.post(effect.url, effect.headers, effect.body, effect.timeout)
            # An async publisher's transport answers with an awaitable; one
            # that answers at once (in memory) is made one here.
            return self._done(result) if isinstance(result, HTTPResult) else result
        if isinstance(effect, Gather):
            return self._gather(effect)
        if isinstance(effect, Call):
            if effect.nowait is not None and self._reads_inline:
                try:
                    return self._done(effect.nowait(*effect.args))
                except WouldBlock:
                    pass  # it would wait: in a thread, then
            return self._call(effect.fn, *effect.args)
        if isinstance(effect, Sleep):
            return self._sleep(effect.seconds)
        if isinstance(effect, Wait):
            return self._wait(effect.waiter)
        raise TypeError(f"unknown effect {effect!r}")

    def _close(self) -> None:
        """Close the transport, and the store if it was opened here."""
        self.transport.close()
        if self._owns_store:
            self.store.close()

    #: Try a store's non-waiting read in place before handing it to a thread
    #: (event loops: a hand-off costs more than a local SQLite read).
    _reads_inline = True

    def _done(self, value: Any) -> Any:
        """*value* as ``_call`` returns results: itself, or an awaitable of it."""
        return value

    # -- hooks: each returns the result, or an awaitable of it in async adapters --

    @abc.abstractmethod
    def _default_transport(self) -> Any:
        """The :class:`ITransport` over this framework's own HTTP client."""

    @abc.abstractmethod
    def _gather(self, gather: Gather) -> Any:
        """Run ``gather.flows`` concurrently, at most ``gather.limit`` at once; their results."""

    @abc.abstractmethod
    def _call(self, fn: Callable[..., T], *args: Any) -> Any:
        """Run the blocking store call ``fn(*args)`` without blocking the loop."""

    @abc.abstractmethod
    def _sleep(self, seconds: float) -> Any:
        """Wait without blocking the loop."""

    @abc.abstractmethod
    def _new_waiter(self) -> tuple[Any, Callable[[Any], None]]:
        """``(waiter, resolve)``: ``_wait(waiter)`` gives the value passed to ``resolve``.
        ``resolve`` may be called after the waiting caller has given up (cancelled);
        it must then do nothing."""

    def _linger(self) -> Any:
        """A waiter for a lane's lead to wait on before it sends, or None to send at
        once (see :class:`~skyhooks.core.delivery.Coalescer`'s ``linger``)."""
        return None

    def _wait(self, waiter: Any) -> Any:
        """Wait for *waiter*: its value, or an awaitable of it. Async adapters'
        waiters are awaitable themselves."""
        return waiter


class _LookupCache:
    """The store's ``lookup`` remembered for *ttl* seconds per set of topics.

    For publishers that send many messages to the same keys (a task's progress
    steps): one store query serves them all. Pruning goes through to the store
    and forgets every cached answer, so a dead URL is never targeted again from
    the cache. Thread-safe.
    """

    blocks_natively: bool

    def __init__(self, store: HookStore, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store, self._ttl, self._clock = store, ttl, clock
        self._answers: dict[frozenset[Topic], tuple[float, Mapping[str, frozenset[Topic]]]] = {}
        self._lock = threading.Lock()
        self.blocks_natively = store.blocks_natively
        reset_in_child(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a thread of the parent's may have held it

    def lookup(self, topics: frozenset[Topic]) -> Mapping[str, frozenset[Topic]]:
        return self._lookup(topics, self._store.lookup)

    def lookup_nowait(self, topics: frozenset[Topic]) -> Mapping[str, frozenset[Topic]]:
        return self._lookup(topics, self._store.lookup_nowait)

    def _lookup(
        self, topics: frozenset[Topic], ask: Callable[[frozenset[Topic]], Mapping[str, frozenset[Topic]]]
    ) -> Mapping[str, frozenset[Topic]]:
        now = self._clock()
        with self._lock:
            cached = self._answers.get(topics)
        if cached is not None and cached[0] > now:
            return cached[1]
        answer = ask(topics)
        with self._lock:
            if len(self._answers) > 10_000:  # bounded: forget everything rather than grow
                self._answers.clear()
            self._answers[topics] = (now + self._ttl, answer)
        return answer

    def remove_url(self, url: str) -> int:
        self._forget()
        return self._store.remove_url(url)

    def remove(self, url: str, topics: Iterable[Topic]) -> None:
        self._forget()
        self._store.remove(url, topics)

    def _forget(self) -> None:
        with self._lock:
            self._answers.clear()


class SyncPublisher(BasePublisher):
    """A publisher whose ``notify`` blocks its caller (a thread, or a greenlet).

    Subclasses fill in ``_send`` and ``_map`` (run a function over items with
    bounded concurrency); store calls and sleeps simply block the caller.
    """

    def notify(self, keys: Keys, data: Any) -> DeliveryReport:
        """Deliver *data* to every callback listening for any of *keys*."""
        return run_sync(self._flow([(keys, data)]), self._perform)[0]

    def notify_many(self, messages: Iterable[tuple[Keys, Any]]) -> list[DeliveryReport]:
        """Deliver several ``(keys, data)`` messages: one lookup, one POST per
        instance (a batch where an instance gets more than one); a report per message."""
        return run_sync(self._flow(messages), self._perform)

    def _gather(self, gather: Gather) -> list[Any]:
        def run(flow: Flow[Any]) -> Any:
            return run_sync(flow, self._perform)

        return self._map(run, gather.flows, gather.limit)

    @abc.abstractmethod
    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any], limit: int) -> list[Any]:
        """``[fn(item) for item in items]``, at most *limit* running at once."""

    # The caller's thread may block: read the store directly (see _call).
    _reads_inline = False

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)

    def _new_waiter(self) -> tuple[_Waiter, Callable[[Any], None]]:
        waiter = _Waiter()
        return waiter, waiter.resolve

    def _wait(self, waiter: _Waiter) -> Any:
        return waiter.wait()

    def close(self) -> None:
        """Release connections (and the store, if it was opened from a URL here)."""
        self._close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Waiter:
    """One value handed from one thread to another: a lock held from birth, released
    once the value is in. (A ``concurrent.futures.Future`` does the same with a
    Condition, a list of waiters and a new lock per wait: several times the cost,
    paid for every message that waits in a lane.) Threads, or greenlets where
    ``threading`` is monkey-patched, as the lock is made when the waiter is."""

    __slots__ = ("__weakref__", "_lock", "_resolved", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._resolved = False
        self._value: Any = None

    def resolve(self, value: Any) -> None:
        """Hand over *value*; later calls do nothing (see ``_new_waiter``)."""
        if self._resolved:
            return
        self._resolved = True
        self._value = value
        self._lock.release()

    def wait(self) -> Any:
        self._lock.acquire()
        return self._value

    def peek(self) -> Any:
        """The value handed over so far (None if none), without waiting."""
        return self._value if self._resolved else None
