"""The asyncio registry: timers and waiters on the running loop, store writes in a thread of its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core import BaseRegistry

__all__ = ["Registry", "new_waiter"]

log = logging.getLogger("skyhooks.asyncio")


def new_waiter(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Future[Any], Callable[[Any], None]]:
    """A Future on *loop* and the function that completes it (once, unless cancelled)."""
    future = loop.create_future()

    def resolve(value: Any) -> None:
        if not future.done():  # the caller may have cancelled it; that is its business
            future.set_result(value)

    return future, resolve


class Registry(BaseRegistry["asyncio.Future[Any]"]):
    """This instance's callbacks, kept in the store; ``register``/``unregister``/``stop`` return Futures.

    Call it from the loop's thread. It binds to the running loop at its first use
    (``start()`` or ``register()``), so it may be built before the loop runs."""

    def __init__(self, url: str, store: Any, secret: str | bytes, ttl: float = 90.0, **options: Any) -> None:
        super().__init__(url, store, secret, ttl, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        # One worker: the core never has two store writes in flight, and a pool of our own
        # keeps a hung store from starving the app's default executor, and vice versa.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skyhooks-registry")
        # The loop keeps only weak references to tasks: async callbacks are held until done.
        self._tasks: set[asyncio.Future[Any]] = set()

    def _bound_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _finish_stop(self, removed: bool) -> None:
        super()._finish_stop(removed)  # (which hands the store's close, if ours, to the worker)
        self._executor.shutdown(wait=False)  # the worker ends once its last job is done

    def _run_blocking(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        def finished(future: asyncio.Future[Any]) -> None:
            error = future.exception()
            done(None if error else future.result(), error)

        self._bound_loop().run_in_executor(self._executor, fn).add_done_callback(finished)

    def _call_later(self, delay: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        return self._bound_loop().call_later(delay, fn)

    def _new_waiter(self) -> tuple[asyncio.Future[Any], Callable[[Any], None]]:
        return new_waiter(self._bound_loop())

    def _schedule(self, awaitable: Any, context: str) -> None:
        task = asyncio.ensure_future(awaitable, loop=self._bound_loop())
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._scheduled_done(done, context))

    def _scheduled_done(self, task: asyncio.Future[Any], context: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", context, exc_info=task.exception())
