"""The registry logic every adapter shares (a template method, as in APScheduler).

:class:`BaseRegistry` owns the callback table, keeps the store in step with it,
renews, retries, stops, and turns incoming requests into dispatches. An
adapter subclasses it and fills in four hooks, in its own idiom:

- ``_run_blocking(fn, done)``: run the blocking ``fn()`` off the event loop,
  then call ``done(result, error)`` back on the loop;
- ``_call_later(delay, fn)``: a timer with a ``cancel()`` method;
- ``_new_waiter()``: an awaitable (Future, Deferred, AsyncResult) and a
  function that completes it; ``register``/``unregister``/``stop`` return it;
- ``_schedule(awaitable, context)``: run what an async callback returned, logging
  errors with *context* (which callback, which message);
- ``_invoke(callback, message)``, optionally: how one callback is run (inline,
  by default; gevent gives each a greenlet).

:class:`BlockingRegistry` is the base for frameworks whose calls block the
caller (gevent): ``register`` and the others wait there for the store.

Everything but ``_run_blocking``'s worker runs on the loop's thread (or in
greenlets of the hub's thread), so no locks are needed here.

Store writes are serialised (one in flight at a time) and coalesced: changes
made while a write is in flight go out together in the next one, so an
``unregister`` can never overtake the ``register`` before it. Any failed write
is retried with backoff as a full :meth:`IHookStore.renew`, which rewrites this
instance's whole subscription set and so heals whatever the store lost.
"""

from __future__ import annotations

import abc
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from .callbacks import Callback, CallbackTable
from .errors import ConfigurationError, RequestError, SkyhooksError
from .keys import Keys, Topic, topics_of
from .stores import open_store
from .urls import UrlPolicy
from .values import Message
from .wire import (
    DEFAULT_MAX_BODY_SIZE,
    HeaderGetter,
    RecentIds,
    RequestReader,
    Response,
    Verifier,
    batch_response,
    error_response,
    ok_response,
)

__all__ = ["BaseRegistry", "BlockingRegistry", "Cancellable"]

log = logging.getLogger("skyhooks.registry")

W = TypeVar("W")
Resolve = Callable[[Any], None]


class Cancellable(Protocol):
    def cancel(self) -> Any: ...


class BaseRegistry(abc.ABC, Generic[W]):
    """One instance's side: local callbacks, kept in step with the shared store.

    ``W`` is what ``register``/``unregister``/``stop`` return in the adapter's
    idiom. Those methods take effect locally at once; what they return only
    says when the store has caught up, so ignoring it loses nothing.
    """

    def __init__(
        self,
        url: str,
        store: Any,
        secret: str | bytes,
        ttl: float = 90.0,
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        url_policy: UrlPolicy | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        refusal = (url_policy or UrlPolicy()).refusal(url)
        if refusal:
            raise ConfigurationError(f"webhook URL {url!r} {refusal}")
        if not ttl > 0:
            raise ConfigurationError(f"ttl must be a positive number of seconds, not {ttl!r}")
        self.url = url
        self.ttl = float(ttl)
        self.store = open_store(store)
        # A store opened here from a URL is closed once stopped; one handed in is the caller's.
        self._owns_store = isinstance(store, str)
        self.stop_timeout = stop_timeout
        self._verifier = Verifier(secret, max_body_size=max_body_size)
        self._recent = RecentIds(thread_safe=False)  # used on the loop's (hub's, reactor's) thread only
        self._callbacks = CallbackTable()
        self._state = "new"  # -> started -> stopping -> stopped
        self._pending: dict[Topic, bool] = {}  # topic -> wanted in the store, not yet written
        self._full_sync_due = True
        self._busy = False
        self._waiting: list[Resolve] = []
        self._stop_waiting: list[Resolve] = []
        self._stop_deadline = 0.0
        self._failures = 0
        self._renew_timer: Cancellable | None = None
        self._retry_timer: Cancellable | None = None

    # -- hooks --------------------------------------------------------------------

    @abc.abstractmethod
    def _run_blocking(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        """Run ``fn()`` off the loop; call ``done(result, error)`` on the loop."""

    @abc.abstractmethod
    def _call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable:
        """Call ``fn()`` on the loop after ``delay`` seconds."""

    @abc.abstractmethod
    def _new_waiter(self) -> tuple[W, Resolve]:
        """An awaitable in the adapter's idiom and the function that completes it."""

    def _schedule(self, awaitable: Any, context: str) -> None:
        """Run what an async callback returned; log its errors, naming *context*
        (which callback, which message)."""
        log.error("%s cannot run the awaitable %s returned", type(self).__name__, context)
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()

    @staticmethod
    def _report(fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        """``done(fn(), None)``, or ``done(None, error)`` if ``fn()`` raised: a ``_run_blocking``
        whose worker runs on the loop's thread (a greenlet) may just run this there."""
        try:
            result = fn()
        except Exception as exc:
            return done(None, exc)
        done(result, None)

    @staticmethod
    async def _logged(awaitable: Awaitable[Any], context: str) -> None:
        """Await *awaitable*, logging its failure, naming *context*: a ``_schedule`` may just
        run this coroutine in its framework's idiom (Twisted: ``ensureDeferred``)."""
        try:
            await awaitable
        except Exception:
            log.exception("%s failed", context)

    def _invoke(self, callback: Callback, message: Message) -> None:
        """Call one callback; a raising callback is logged, never propagated."""
        try:
            result = callback(message)
        except Exception:
            log.exception("callback %r raised on message %s", callback, message.id)
            return
        if result is not None and inspect.isawaitable(result):
            self._schedule(result, f"callback {callback!r} on message {message.id}")

    # -- public API -------------------------------------------------------------------

    @property
    def max_body_size(self) -> int:
        """Bodies over this many bytes are refused with 413."""
        return self._verifier.max_body_size

    def reader(self, method: str, header: HeaderGetter | dict[str, str]) -> RequestReader:
        """A reader for one incoming request (see :class:`~skyhooks.core.wire.RequestReader`):
        every adapter's endpoint feeds its framework's request through one. *header* is a
        getter by lower-case name, or a dict by lower-case name the adapter has built anyway."""
        return RequestReader(self.handle_request, self._verifier.max_body_size, method, header)

    @property
    def topics(self) -> frozenset[Topic]:
        """The topics this instance has callbacks for."""
        return self._callbacks.topics()

    def start(self) -> None:
        """Write every live topic to the store and keep renewing; idempotent."""
        if self._state in ("stopping", "stopped"):
            raise SkyhooksError("this registry was stopped; make a new Registry to listen again")
        if self._state == "started":
            return
        self._state = "started"
        self._full_sync_due = True
        self._renew_timer = self._call_later(self.ttl / 3, self._renew)
        self._sync()

    def register(self, keys: Keys, callback: Callback) -> W:
        """Dispatch messages for any of *keys* to *callback*, from now on."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {callback!r}")
        live = self._callbacks.add(topics_of(keys), callback)
        return self._changed(live, True)

    def unregister(self, keys: Keys, callback: Callback) -> W:
        """Stop dispatching *keys* to *callback* (a no-op if it was not registered)."""
        dead = self._callbacks.remove(topics_of(keys), callback)
        return self._changed(dead, False)

    def stop(self) -> W:
        """Stop renewing and remove this URL from the store.

        The result completes with True once the store forgot this URL, or with
        False after ``stop_timeout`` seconds of failures (the subscriptions then
        expire by TTL). Local dispatch keeps working.
        """
        waiter, resolve = self._new_waiter()
        if self._state == "stopped":
            resolve(True)
            return waiter
        self._stop_waiting.append(resolve)
        if self._state != "stopping":
            self._state = "stopping"
            self._stop_deadline = time.monotonic() + self.stop_timeout
            self._failures = 0
            for timer in (self._renew_timer, self._retry_timer):
                if timer is not None:
                    timer.cancel()
            self._renew_timer = self._retry_timer = None
            self._sync()
        return waiter

    def handle_request(self, method: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Verify, deduplicate and dispatch one webhook request (one message or a
        batch); never raises for bad input."""
        try:
            parsed = self._verifier.parse(method, headers, body)
        except RequestError as exc:
            log.info("refused webhook request (%d): %s", exc.status, exc.reason)
            return error_response(exc)
        if not parsed.batch:
            (one,) = parsed.messages
            if self._recent.check_and_add(one.message.id):
                return ok_response(0, duplicate=True)
            return ok_response(self.dispatch(one.message, one.topics))
        return batch_response(
            [
                None if self._recent.check_and_add(m.message.id) else self.dispatch(m.message, m.topics)
                for m in parsed.messages
            ]
        )

    def dispatch(self, message: Message, topics: frozenset[Topic] | None = None) -> int:
        """Run every callback *message* reaches, once each; return how many."""
        callbacks = self._callbacks.match(topics if topics is not None else topics_of(message.keys))
        for callback in callbacks:
            self._invoke(callback, message)
        return len(callbacks)

    # -- keeping the store in step --------------------------------------------------------

    def _changed(self, topics: list[Topic], wanted: bool) -> W:
        waiter, resolve = self._new_waiter()
        for topic in topics:
            self._pending[topic] = wanted
        if self._state == "stopped":
            resolve(None)
        else:
            self._waiting.append(resolve)
            self._sync()
        return waiter

    def _renew(self) -> None:
        self._renew_timer = self._call_later(self.ttl / 3, self._renew)
        self._full_sync_due = True
        self._sync()

    def _retry(self) -> None:
        self._retry_timer = None
        self._sync()

    def _sync(self) -> None:
        if self._busy or self._state == "new" or self._retry_timer is not None:
            return
        waiters, self._waiting = self._waiting, []
        if self._state in ("stopping", "stopped"):
            # Pending changes no longer matter: the whole url is about to go.
            self._release(waiters)
            if self._state == "stopping":
                self._write(lambda: self.store.remove_url(self.url), [], removing=True)
            return
        url, ttl = self.url, self.ttl
        if self._full_sync_due:
            topics = self._callbacks.topics()
            self._full_sync_due = False
            self._pending = {}
            self._write(lambda: self.store.renew(url, topics, ttl), waiters)
        elif self._pending:
            adds = [topic for topic, wanted in self._pending.items() if wanted]
            removes = [topic for topic, wanted in self._pending.items() if not wanted]
            self._pending = {}

            def apply() -> None:
                if removes:
                    self.store.remove(url, removes)
                if adds:
                    self.store.add(url, adds, ttl)

            self._write(apply, waiters)
        else:
            self._release(waiters)

    def _write(self, job: Callable[[], Any], waiters: list[Resolve], removing: bool = False) -> None:
        self._busy = True
        self._run_blocking(job, lambda result, error: self._written(waiters, error, removing))

    def _written(self, waiters: list[Resolve], error: BaseException | None, removing: bool) -> None:
        self._busy = False
        if self._state == "stopping":
            self._release(waiters)  # superseded by the stop
            if removing:
                self._removed(error)
            else:
                self._sync()  # an earlier write finished: now remove the url
            return
        if error is None:
            self._failures = 0
            self._release(waiters)
            self._sync()  # more changes may have come in meanwhile
            return
        self._failures += 1
        self._waiting = waiters + self._waiting
        self._full_sync_due = True
        delay = self._backoff()
        log.warning("store update for %s failed (%s); retrying in %.1fs", self.url, error, delay)
        self._retry_timer = self._call_later(delay, self._retry)

    def _removed(self, error: BaseException | None) -> None:
        if error is None:
            self._finish_stop(True)
            return
        self._failures += 1
        delay = self._backoff()
        if time.monotonic() + delay > self._stop_deadline:
            log.warning(
                "could not remove %s from the store (%s); its subscriptions expire within %.0fs",
                self.url,
                error,
                self.ttl,
            )
            self._finish_stop(False)
            return
        self._retry_timer = self._call_later(delay, self._retry)

    def _finish_stop(self, removed: bool) -> None:
        self._state = "stopped"
        if self._owns_store:
            self._run_blocking(self.store.close, lambda result, error: None)
        waiting, self._stop_waiting = self._stop_waiting, []
        for resolve in waiting:
            resolve(removed)

    def _backoff(self) -> float:
        ceiling = min(30.0, self.ttl / 3)
        exponential: float = 0.5 * 2.0 ** min(self._failures - 1, 16)
        return min(ceiling, exponential) * (0.5 + random.random() / 2)

    @staticmethod
    def _release(waiters: list[Resolve]) -> None:
        for resolve in waiters:
            resolve(None)


class BlockingRegistry(BaseRegistry[W]):
    """A registry whose ``register``, ``unregister`` and ``stop`` block their caller
    (a greenlet, under gevent) until the store has caught up, then say whether it has.

    They take effect locally at once, then wait at most *timeout* seconds
    (``None``: no limit; ``0``: not at all) and return True once the store is up
    to date (for ``stop``: once it forgot this URL), False if it is not yet; the
    store keeps being retried in the background either way. They never wait
    before ``start()`` (the store is written then), nor where the adapter says
    nothing may block (``_may_block``: gevent's hub).
    """

    _started = False

    @abc.abstractmethod
    def _wait(self, waiter: W, timeout: float | None) -> bool:
        """Wait for *waiter* at most *timeout* seconds; whether it is resolved."""

    def _may_block(self) -> bool:
        """Whether the caller may wait here (gevent: not in the hub)."""
        return True

    @staticmethod
    @abc.abstractmethod
    def _value(waiter: W) -> Any:
        """The value *waiter* was resolved with (it is resolved)."""

    def start(self) -> None:
        super().start()
        self._started = True

    def register(self, keys: Keys, callback: Callback, *, timeout: float | None = None) -> bool:  # type: ignore[override]
        return self._settled(super().register(keys, callback), timeout, self._started)

    def unregister(self, keys: Keys, callback: Callback, *, timeout: float | None = None) -> bool:  # type: ignore[override]
        return self._settled(super().unregister(keys, callback), timeout, self._started)

    def stop(self, *, timeout: float | None = None) -> bool:  # type: ignore[override]
        waiter = super().stop()
        return self._settled(waiter, timeout, True) and bool(self._value(waiter))

    def _settled(self, waiter: W, timeout: float | None, may_wait: bool) -> bool:
        if may_wait and timeout != 0 and self._may_block():
            return self._wait(waiter, timeout)
        return self._wait(waiter, 0)
