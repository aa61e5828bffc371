"""The publisher hooks for an asyncio loop, shared by the Tornado publisher and
the blocking publisher's background loop (:meth:`skyhooks.Publisher.submit`).

asyncio is the standard library's, not a framework: Tornado runs on it, and a
blocking program gets one in a thread of its own (``skyhooks/_background.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._asyncio_http import Http1Pool
from .core import BasePublisher
from .core.delivery import Gather, HTTPResult, Send, run_async
from .core.forks import reset_in_child
from .core.keys import Keys
from .core.values import DeliveryReport

__all__ = ["AsyncioPublisher"]


class AsyncioPublisher(BasePublisher):
    """``report = await publisher.notify(keys, data)`` on the running asyncio loop.

    Requests go over skyhooks' own HTTP/1.1 keep-alive client on asyncio
    streams (``skyhooks/_asyncio_http.py``); store calls that would block go
    to a small thread pool of the publisher's own.
    """

    def __init__(self, store: Any, secret: str | bytes, **options: Any) -> None:
        super().__init__(store, secret, **options)
        self._http = Http1Pool(self.concurrency)
        self._executor = self._new_executor()
        reset_in_child(self)

    @staticmethod
    def _new_executor() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=4, thread_name_prefix="skyhooks-publisher")

    def _after_fork(self) -> None:
        # A forked child (tornado.process.fork_processes after a notify, say) has
        # none of the pool's threads, but the executor counts them as idle and
        # would start none: every store call would wait for ever. (The pool's
        # idle connections reset themselves: core/http1.py.)
        self._executor = self._new_executor()

    async def notify(self, keys: Keys, data: Any) -> DeliveryReport:
        """Deliver *data* to every callback listening for any of *keys*."""
        return (await run_async(self._flow([(keys, data)]), self._perform))[0]

    async def notify_many(self, messages: Iterable[tuple[Keys, Any]]) -> list[DeliveryReport]:
        """Deliver several ``(keys, data)`` messages: one lookup, one POST per
        instance (a batch where an instance gets more than one); a report per message."""
        return await run_async(self._flow(messages), self._perform)

    def close(self) -> None:
        """Close pooled connections and store worker threads (and the store, if opened here)."""
        self._http.close()
        self._executor.shutdown(wait=False)
        self._close_store()

    def _call(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _done(self, value: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(value)
        return future

    def _sleep(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(seconds)

    def _new_waiter(self) -> tuple[asyncio.Future[Any], Callable[[Any], None]]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def resolve(value: Any) -> None:
            if not future.done():  # a cancelled caller's future stays cancelled
                future.set_result(value)

        return future, resolve

    async def _gather(self, gather: Gather) -> list[Any]:
        results: list[Any] = [None] * len(gather.flows)
        queue = iter(enumerate(gather.flows))

        async def worker() -> None:
            for index, flow in queue:  # the workers share one iterator: at most `limit` flows run
                results[index] = await run_async(flow, self._perform)

        workers = min(gather.limit, len(gather.flows))
        await (worker() if workers == 1 else asyncio.gather(*(worker() for _ in range(workers))))
        return results

    async def _send(self, send: Send) -> HTTPResult:
        return await self._http.post(send.url, send.headers, send.body, send.timeout)
