"""One driver per publisher: build it on an in-memory transport, run its calls to the end.

Each driver hides its framework's idiom (a blocking call, a coroutine on a
loop, a greenlet, a Deferred on a fake reactor) so that the contract suite
states every promise once. A framework that is not installed is a visible skip.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from skyhooks.testing import MemoryTransport

KINDS = ["blocking", "asyncio", "tornado", "gevent", "twisted"]
_NEEDS = {"tornado": "tornado", "gevent": "gevent", "twisted": "treq"}


def missing(kind: str) -> str | None:
    module = _NEEDS.get(kind)
    if module is not None and importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    return None


class Driver:
    """``publisher(store, secret, transport, **options)`` and ``run(call)`` -> the call's outcome."""

    kind: str

    def publisher(self, store: Any, secret: str, transport: MemoryTransport, **options: Any) -> Any:
        raise NotImplementedError

    def run(self, call: Callable[[], Any]) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


class BlockingDriver(Driver):
    kind = "blocking"

    def publisher(self, store, secret, transport, **options):
        from skyhooks import Publisher

        return Publisher(store, secret, transport=transport, **options)

    def run(self, call):
        return call()


class AsyncioDriver(Driver):
    """A plain asyncio loop: skyhooks.asyncio.Publisher (the transport handed in, so no aiohttp)."""

    kind = "asyncio"

    def __init__(self) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()

    def publisher(self, store, secret, transport, **options):
        from skyhooks.asyncio import Publisher

        return Publisher(store, secret, transport=transport, **options)

    def run(self, call):
        async def awaited():
            return await call()

        return self.loop.run_until_complete(awaited())

    def close(self) -> None:
        self.loop.close()


class TornadoDriver(AsyncioDriver):
    kind = "tornado"

    def publisher(self, store, secret, transport, **options):
        from skyhooks.tornado import Publisher

        return Publisher(store, secret, transport=transport, **options)


class GeventDriver(Driver):
    kind = "gevent"

    def publisher(self, store, secret, transport, **options):
        # This pytest process is not monkey-patched; the adapter allows that on purpose.
        os.environ.setdefault("SKYHOOKS_GEVENT_UNPATCHED", "1")
        from skyhooks.gevent import Publisher

        return Publisher(store, secret, transport=transport, **options)

    def run(self, call):
        import gevent

        return gevent.spawn(call).get()


class TwistedDriver(Driver):
    """A fake reactor: its clock is advanced by hand, so retries cost no wall-clock time."""

    kind = "twisted"

    def __init__(self) -> None:
        from tests.support.twisted_fakes import FakeReactor, InlineThreadPool

        self.reactor = FakeReactor()
        self.threadpool = InlineThreadPool()

    def publisher(self, store, secret, transport, **options):
        from skyhooks.twisted import Publisher

        return Publisher(
            store, secret, transport=transport, reactor=self.reactor, threadpool=self.threadpool, **options
        )

    def run(self, call):
        from twisted.python.failure import Failure

        outcome: list[Any] = []
        call().addBoth(outcome.append)
        for _ in range(100_000):
            if outcome:
                break
            self.reactor.advance(0.01)
        assert outcome, "the Deferred never fired"
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
        return outcome[0]


DRIVERS = {
    "blocking": BlockingDriver,
    "asyncio": AsyncioDriver,
    "tornado": TornadoDriver,
    "gevent": GeventDriver,
    "twisted": TwistedDriver,
}
