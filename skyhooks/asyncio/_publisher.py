"""The asyncio publisher: the core's delivery flow on the running loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core import BasePublisher, ConfigurationError
from ..core.delivery import Gather, run_async
from ..core.forks import reset_in_child
from ..core.keys import Keys
from ..core.values import DeliveryReport
from ._registry import new_waiter

__all__ = ["Publisher"]


class Publisher(BasePublisher):
    """Publish to every instance listening for a message's keys: ``report = await publisher.notify(...)``.

    It has no HTTP client of its own yet: pass ``transport=``, an
    :class:`~skyhooks.core.delivery.ITransport` whose ``post`` returns an
    awaitable, or use :class:`skyhooks.tornado.Publisher`, which sends with
    Tornado's ``AsyncHTTPClient``. Store calls that would block the loop go to
    a small thread pool of the publisher's own.
    """

    def __init__(self, store: Any, secret: str | bytes, **options: Any) -> None:
        super().__init__(store, secret, **options)
        self._executor = self._new_executor()
        reset_in_child(self)

    @staticmethod
    def _new_executor() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=4, thread_name_prefix="skyhooks-publisher")

    def _after_fork(self) -> None:
        # A forked child has none of the pool's threads, but the executor counts
        # them as idle and would start none: every store call would wait for ever.
        self._executor = self._new_executor()

    def _default_transport(self) -> Any:
        raise ConfigurationError(
            "skyhooks.asyncio.Publisher has no HTTP client of its own: pass transport= "
            "(an ITransport), or use skyhooks.tornado.Publisher"
        )

    async def notify(self, keys: Keys, data: Any) -> DeliveryReport:
        """Deliver *data* to every callback listening for any of *keys*."""
        return (await run_async(self._flow([(keys, data)]), self._perform))[0]

    async def notify_many(self, messages: Iterable[tuple[Keys, Any]]) -> list[DeliveryReport]:
        """Deliver several ``(keys, data)`` messages: one lookup, one POST per
        instance (a batch where an instance gets more than one); a report per message."""
        return await run_async(self._flow(messages), self._perform)

    def close(self) -> None:
        """Close the transport and the store worker threads (and the store, if opened here)."""
        self._executor.shutdown(wait=False)
        self._close()

    def _call(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _done(self, value: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(value)
        return future

    def _sleep(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(seconds)

    def _new_waiter(self) -> tuple[asyncio.Future[Any], Callable[[Any], None]]:
        return new_waiter(asyncio.get_running_loop())

    async def _gather(self, gather: Gather) -> list[Any]:
        results: list[Any] = [None] * len(gather.flows)
        queue = iter(enumerate(gather.flows))

        async def worker() -> None:
            for index, flow in queue:  # the workers share one iterator: at most `limit` flows run
                results[index] = await run_async(flow, self._perform)

        workers = min(gather.limit, len(gather.flows))
        await (worker() if workers == 1 else asyncio.gather(*(worker() for _ in range(workers))))
        return results
