"""Twisted fakes for tests that run on a fake clock: a ``Clock`` has no threads.

``InlineThreadPool`` runs each call at once, and ``FakeReactor`` is Twisted's
``MemoryReactorClock`` plus a ``callFromThread`` that runs at once.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure


class InlineThreadPool:
    """A fake ThreadPool: runs each call at once, on the calling thread."""

    def callInThreadWithCallback(self, on_result: Any, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, result)


class FakeReactor(MemoryReactorClock):
    """A fake reactor: Clock timers, recorded system event triggers, inline callFromThread."""

    def callFromThread(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        fn(*args, **kwargs)
