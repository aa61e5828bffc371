"""An asyncio loop in a daemon thread of its own, for blocking code that wants
many deliveries in flight at once (:meth:`skyhooks.Publisher.submit`).

Started on first use and anew in a forked child (a Celery worker's children
inherit the parent's objects, never its threads). Coroutines are handed over
through a queue with one wake-up of the loop per burst: each
``call_soon_threadsafe`` writes to the loop's self-pipe, and a caller
submitting thousands of messages needs one write, not thousands.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["BackgroundLoop"]

T = TypeVar("T")
S = TypeVar("S")


class BackgroundLoop(Generic[S]):
    """Runs coroutines on a loop thread; thread-safe.

    *setup* runs on the loop thread once per process, before the first
    coroutine, and makes the state they share there (connection pools bound to
    that loop); each submitted function receives it.
    """

    def __init__(self, setup: Callable[[], S], teardown: Callable[[S], None], name: str) -> None:
        self._setup, self._teardown, self._name = setup, teardown, name
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._state: S | None = None
        self._queue: deque[tuple[Callable[[S], Coroutine[Any, Any, Any]], concurrent.futures.Future[Any]]]
        self._queue = deque()
        self._woken = False

    def submit(self, make: Callable[[S], Coroutine[Any, Any, T]]) -> concurrent.futures.Future[T]:
        """Run ``make(state)`` on the loop; a future of its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            loop = self._running()
            self._queue.append((make, future))
            wake, self._woken = not self._woken, True
        if wake:
            loop.call_soon_threadsafe(self._drain)
        return future

    def stop(self) -> None:
        """Stop the loop (after what it is running now) and wait for its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            mine = self._pid == os.getpid()
            self._loop = self._thread = None
        if loop is None or thread is None or not mine:
            return
        loop.call_soon_threadsafe(self._shut, loop)
        thread.join()
        loop.close()

    # -- on the caller's thread ------------------------------------------------------

    def _running(self) -> asyncio.AbstractEventLoop:
        # With self._lock held.
        if self._loop is not None and self._pid == os.getpid():
            return self._loop
        # First use, or a forked child: the parent's loop, thread and queue are not ours.
        self._pid, self._queue, self._woken, self._state = os.getpid(), deque(), False, None
        loop = self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(loop, started), name=self._name, daemon=True)
        self._thread.start()
        started.wait()
        return loop

    # -- on the loop's thread -------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()

    def _drain(self) -> None:
        with self._lock:
            items, self._queue, self._woken = self._queue, deque(), False
        if self._state is None:
            self._state = self._setup()
        loop = asyncio.get_running_loop()
        for make, future in items:
            if not future.set_running_or_notify_cancel():
                continue  # cancelled before it started
            task = loop.create_task(make(self._state))
            task.add_done_callback(lambda done, future=future: _settle(future, done))  # type: ignore[misc]

    def _shut(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.create_task(self._finish(loop))

    async def _finish(self, loop: asyncio.AbstractEventLoop) -> None:
        # Whatever still runs is cancelled (its future fails with CancelledError),
        # never left pending for ever.
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks(loop) if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        state, self._state = self._state, None
        if state is not None:
            self._teardown(state)
        loop.stop()


def _settle(future: concurrent.futures.Future[Any], task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        future.set_exception(concurrent.futures.CancelledError())
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())
