"""The Twisted registry: store calls on a thread pool, timers and waiters on the reactor."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from ..core import BaseRegistry
from ..core.registry import Resolve

__all__ = ["Registry"]

# The core's logger, so every adapter's registry logs in one place.
log = logging.getLogger("skyhooks.registry")


class Registry(BaseRegistry["Deferred[Any]"]):
    """An instance's registry; ``register``, ``unregister`` and ``stop`` return Deferreds.

    Store calls run on ``threadpool`` (by default the reactor's own, from
    ``reactor.getThreadPool()``); timers use ``reactor`` (by default the global
    one). Tests may pass a ``twisted.internet.task.Clock`` as ``reactor``, then
    also a ``threadpool``, since a Clock has none. Callbacks may return a
    Deferred or a coroutine; their failures are logged.
    """

    def __init__(
        self,
        url: str,
        store: Any,
        secret: str | bytes,
        ttl: float = 90.0,
        *,
        reactor: Any = None,
        threadpool: ThreadPool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(url, store, secret, ttl, **options)
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._threadpool = threadpool

    def stop_on_shutdown(self) -> Any:
        """Make reactor shutdown wait for :meth:`stop` (bounded by ``stop_timeout``).

        Returns the trigger id, for ``reactor.removeSystemEventTrigger``.
        """
        return self._reactor.addSystemEventTrigger("before", "shutdown", self.stop)

    # -- the hooks BaseRegistry asks for ---------------------------------------------

    def _run_blocking(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        # Resolved late: getThreadPool() creates and starts the reactor's pool.
        pool = self._threadpool or self._reactor.getThreadPool()
        deferToThreadPool(self._reactor, pool, fn).addCallbacks(
            lambda result: done(result, None), lambda failure: done(None, failure.value)
        )

    def _call_later(self, delay: float, fn: Callable[[], None]) -> IDelayedCall:
        call: IDelayedCall = self._reactor.callLater(delay, fn)
        return call

    def _new_waiter(self) -> tuple[Deferred[Any], Resolve]:
        waiter: Deferred[Any] = Deferred()
        return waiter, waiter.callback

    def _schedule(self, awaitable: Any, context: str) -> None:
        ensureDeferred(_awaited(awaitable)).addErrback(_log_failure, context)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    # One path for coroutines, Deferreds and any other awaitable that yields Deferreds.
    return await awaitable


def _log_failure(failure: Failure, context: str) -> None:
    log.error("%s failed", context, exc_info=failure.value)
