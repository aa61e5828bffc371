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
    Sends with aiohttp (``skyhooks[asyncio]``) unless given a ``transport=``; store calls that
    would block the loop go to a thread pool of its own. ``await publisher.aclose()`` when done."""

    def __init__(self, store: Any, secret: str | bytes, **options: Any) -> None:
        super().__init__(store, secret, **options)
        self._after_fork()
        reset_in_child(self)

    def _after_fork(self) -> None:
        # Also in a forked child, where the old pool counts its parent's threads as idle: it would start none.
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="skyhooks-publisher")

    def _default_transport(self) -> Any:
        try:
            from ..aiohttp._transport import AiohttpTransport
        except ImportError as exc:
            message = "skyhooks.asyncio.Publisher sends with aiohttp: pip install 'skyhooks[asyncio]'"
            raise ConfigurationError(message + " (or pass transport=, an ITransport)") from exc
        return AiohttpTransport(self.concurrency)

    async def notify(self, keys: Keys, data: Any) -> DeliveryReport:
        """Deliver *data* to every callback listening for any of *keys*."""
        return (await run_async(self._flow([(keys, data)]), self._perform))[0]

    async def notify_many(self, messages: Iterable[tuple[Keys, Any]]) -> list[DeliveryReport]:
        """Deliver ``(keys, data)`` messages: one lookup, one POST (or batch) per instance."""
        return await run_async(self._flow(messages), self._perform)

    async def aclose(self) -> None:
        """Close as :meth:`close` does, once the transport's connections are closed."""
        if (aclose := getattr(self.transport, "aclose", None)) is not None:
            await aclose()
        self.close()

    def close(self) -> None:
        """Close the transport (without waiting), the store threads, the store if opened here."""
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
