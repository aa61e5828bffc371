"""The gevent Registry: greenlet timers, cooperative store calls, blocking waits."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import gevent
from gevent.event import AsyncResult

from ..core.callbacks import Callback
from ..core.keys import Keys, Topic
from ..core.registry import BaseRegistry, Resolve
from ..core.values import Message
from ._hub import StoreCaller, in_hub, store_caller


class _Timer(gevent.Greenlet):  # type: ignore[misc]
    """A greenlet started by ``spawn_later``, with the ``cancel()`` the core expects."""

    def cancel(self) -> None:
        self.kill(block=False)


class Registry(BaseRegistry[Any]):
    """This instance's callbacks, kept in step with the shared store, for gevent.

    Import it only after ``gevent.monkey.patch_all()`` (see :mod:`skyhooks.gevent`).
    ``register``, ``unregister`` and ``stop`` take effect locally at once and
    then block the calling greenlet (only) until the store has caught up, at
    most *timeout* seconds (``None``: no limit; ``0``: do not wait). They return
    True once the store is up to date (for ``stop``: once it forgot this URL)
    and False if that has not happened yet; the store keeps being retried in
    the background either way. They never wait before ``start()`` (the store is
    written then), nor when called from the hub itself, where nothing may block.
    Every callback runs in a greenlet of its own, started before the webhook is
    answered: one that does not block has finished by then.
    """

    _started = False

    @cached_property
    def _call_store(self) -> StoreCaller[Any]:
        return store_caller(self.store)

    def start(self) -> None:
        super().start()
        self._started = True

    def register(self, keys: Keys, callback: Callback, timeout: float | None = None) -> bool:
        return self._wait(super().register(keys, callback), timeout, self._started)

    def unregister(self, keys: Keys, callback: Callback, timeout: float | None = None) -> bool:
        return self._wait(super().unregister(keys, callback), timeout, self._started)

    def stop(self, timeout: float | None = None) -> bool:
        waiter = super().stop()
        return self._wait(waiter, timeout, True) and bool(waiter.value)

    def dispatch(self, message: Message, topics: frozenset[Topic] | None = None) -> int:
        invoked = super().dispatch(message, topics)
        if invoked and not in_hub():
            # The callbacks' greenlets were scheduled first (the hub runs its
            # callbacks in order), so one yield lets them all start, and the
            # non-blocking ones finish, before the caller answers the webhook.
            gevent.sleep(0)
        return invoked

    @staticmethod
    def _wait(waiter: AsyncResult, timeout: float | None, may_wait: bool) -> bool:
        if may_wait and timeout != 0 and not waiter.ready() and not in_hub():
            waiter.wait(timeout)
        return bool(waiter.ready())

    # -- hooks --------------------------------------------------------------------

    def _run_blocking(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        gevent.spawn(self._store_call, fn, done)

    def _store_call(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        try:
            result = self._call_store(fn)
        except Exception as exc:
            done(None, exc)
        else:
            done(result, None)

    def _call_later(self, delay: float, fn: Callable[[], None]) -> _Timer:
        timer: _Timer = _Timer.spawn_later(delay, fn)
        return timer

    def _new_waiter(self) -> tuple[AsyncResult, Resolve]:
        waiter = AsyncResult()
        return waiter, waiter.set

    def _invoke(self, callback: Callback, message: Message) -> None:
        # A greenlet each, so a slow or blocking-on-I/O callback delays neither
        # the others nor the webhook's answer.
        gevent.spawn(super()._invoke, callback, message)
