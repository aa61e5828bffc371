"""The Tornado registry: store calls in a dedicated thread, timers and waiters on the IOLoop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tornado.gen import convert_yielded
from tornado.ioloop import IOLoop

from ..core import BaseRegistry

__all__ = ["Registry"]

log = logging.getLogger("skyhooks.tornado")


class _Timer:
    """An ``IOLoop.call_later`` handle with the ``cancel()`` the core expects."""

    __slots__ = ("_handle", "_loop")

    def __init__(self, loop: IOLoop, handle: object) -> None:
        self._loop = loop
        self._handle = handle

    def cancel(self) -> None:
        self._loop.remove_timeout(self._handle)


class Registry(BaseRegistry["asyncio.Future[Any]"]):
    """This instance's callbacks, kept in the store; ``register``/``unregister``/``stop`` return Futures.

    Call it from the IOLoop's thread. It binds to ``IOLoop.current()`` at its first use
    (``start()`` or ``register()``), so it may be built before the loop exists.
    """

    def __init__(self, url: str, store: Any, secret: str | bytes, ttl: float = 90.0, **options: Any) -> None:
        super().__init__(url, store, secret, ttl, **options)
        self._loop: IOLoop | None = None
        # One worker: the core never has two store writes in flight, and a store of our own
        # keeps a hung store from starving the app's default executor, and vice versa.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skyhooks-registry")
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def _io_loop(self) -> IOLoop:
        if self._loop is None:
            self._loop = IOLoop.current()
        return self._loop

    def _run_blocking(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        def finished(future: asyncio.Future[Any]) -> None:
            error = future.exception()
            done(None if error else future.result(), error)

        loop = self._io_loop
        loop.add_future(loop.run_in_executor(self._executor, fn), finished)

    def _call_later(self, delay: float, fn: Callable[[], None]) -> _Timer:
        loop = self._io_loop
        return _Timer(loop, loop.call_later(delay, fn))

    def _new_waiter(self) -> tuple[asyncio.Future[Any], Callable[[Any], None]]:
        future: asyncio.Future[Any] = self._io_loop.asyncio_loop.create_future()  # type: ignore[attr-defined]

        def resolve(value: Any) -> None:
            if not future.done():  # the caller may have cancelled it; that is its business
                future.set_result(value)

        return future, resolve

    def _schedule(self, awaitable: Any, context: str) -> None:
        future = convert_yielded(awaitable)
        # The loop keeps only weak references to tasks: hold them until they finish.
        self._tasks.add(future)
        self._io_loop.add_future(future, lambda done: self._scheduled_done(done, context))

    def _scheduled_done(self, future: asyncio.Future[Any], context: str) -> None:
        self._tasks.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("%s failed", context, exc_info=future.exception())
