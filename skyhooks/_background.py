"""An asyncio loop in a daemon thread of its own, for blocking code that wants
many deliveries in flight at once (:meth:`skyhooks.Publisher.submit`).

Started on first use and anew in a forked child (a Celery worker's children
inherit the parent's objects, never its threads). Items are handed over
through a queue with one wake-up of the loop per burst (each
``call_soon_threadsafe`` writes to the loop's self-pipe), and what a burst
brought is run as one group: submissions that arrive while the loop is busy
travel together, the way the publishers' lanes coalesce what waits for a busy
instance. At low rates a burst is one item, handled at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import selectors
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

from .core.forks import reset_in_child

__all__ = ["BackgroundLoop"]

S = TypeVar("S")  # the state made on the loop
I = TypeVar("I")  # an item submitted  # noqa: E741
R = TypeVar("R")  # its result


class BackgroundLoop(Generic[S, I, R]):
    """Runs submitted items, in groups, on a loop thread; thread-safe.

    *setup* runs on the loop thread once per process, before the first group,
    and makes the state the groups share there (connection pools bound to that
    loop); ``run(state, items)`` handles one group and returns a result per
    item, in order; *teardown* gets the state when the loop stops.
    """

    def __init__(
        self,
        setup: Callable[[], S],
        run: Callable[[S, Sequence[I]], Coroutine[Any, Any, Sequence[R]]],
        teardown: Callable[[S], None],
        name: str,
    ) -> None:
        self._setup, self._run_group, self._teardown, self._name = setup, run, teardown, name
        self._after_fork()
        reset_in_child(self)

    def _after_fork(self) -> None:
        # Also in a forked child: the parent's loop, its thread, what it had
        # queued and the state made there are not the child's, which makes its
        # own at its first submit. The parent's loop is never closed here: it
        # still looks like running, and closing it or its connections would
        # reach the epoll instance and sockets the child shares with the parent.
        inherited = getattr(self, "_loop", None)  # (unset when called from __init__)
        if inherited is not None:
            _abandon(inherited, self._selector, self._thread, self._state)
        self._lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._state: S | None = None
        self._queue: deque[tuple[I, concurrent.futures.Future[R]]] = deque()
        self._woken = False

    def submit(self, item: I) -> concurrent.futures.Future[R]:
        """Run *item* (with whatever else is waiting) on the loop; a future of its result."""
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        with self._lock:
            loop = self._running()
            self._queue.append((item, future))
            wake, self._woken = not self._woken, True
        if wake:
            loop.call_soon_threadsafe(self._drain)
        return future

    def stop(self) -> None:
        """Stop the loop (cancelling what still runs) and wait for its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(self._shut, loop)
        thread.join()
        loop.close()

    # -- on the caller's thread ------------------------------------------------------

    def _running(self) -> asyncio.AbstractEventLoop:
        # With self._lock held.
        if self._loop is not None:
            return self._loop
        # A selector of our own, so that a forked child can find the
        # descriptors the loop shares with its parent (see _abandon).
        self._selector = selectors.DefaultSelector()
        loop = self._loop = asyncio.SelectorEventLoop(self._selector)
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(loop, started), name=self._name, daemon=True
        )
        self._thread.start()
        started.wait()
        return loop

    # -- on the loop's thread -------------------------------------------------------

    def _serve(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()

    def _drain(self) -> None:
        with self._lock:
            queued, self._queue, self._woken = self._queue, deque(), False
        live = [(item, future) for item, future in queued if future.set_running_or_notify_cancel()]
        if not live:
            return  # every one was cancelled before it started
        if self._state is None:
            self._state = self._setup()
        futures = [future for _, future in live]
        group = self._run_group(self._state, [item for item, _ in live])
        task = asyncio.ensure_future(group)
        task.add_done_callback(lambda done: _settle(futures, done))

    def _shut(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.create_task(self._finish(loop))

    async def _finish(self, loop: asyncio.AbstractEventLoop) -> None:
        # Whatever still runs is cancelled (its futures fail with CancelledError),
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


#: In a forked child, what it inherited of the parent's loops, kept alive
#: (never garbage) for as long as the child runs.
_ABANDONED: list[tuple[object, ...]] = []


def _abandon(
    loop: asyncio.AbstractEventLoop | None, selector: selectors.BaseSelector | None, *rest: object
) -> None:
    """In a forked child: keep the parent's *loop* from ever touching what the
    parent still uses.

    The child shares the parent's epoll instance and sockets (its descriptors
    are copies). Were the loop's connections finalised here, each would
    unregister itself from that epoll instance, and the parent's loop would
    never hear from that socket again (its next POST there timed out, and was
    sent again); a TLS one would send its close_notify on the parent's
    connection. So the loop is kept alive, and the child's copies of its
    descriptors are pointed at /dev/null, which leaves the parent's alone and
    makes anything done with the child's copies (at its exit, say) harmless.
    """
    _ABANDONED.append((loop, selector, *rest))
    if selector is None:
        return
    registered = selector.get_map()  # (None once the selector is closed)
    fds = {key.fd for key in registered.values()} if registered is not None else set()
    fileno = getattr(selector, "fileno", None)  # epoll, kqueue, devpoll: a descriptor of their own
    if fileno is not None:
        with contextlib.suppress(ValueError):  # closed
            fds.add(fileno())
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in fds:
            if fd >= 0:
                os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)


def _settle(futures: list[concurrent.futures.Future[Any]], task: asyncio.Future[Sequence[Any]]) -> None:
    if task.cancelled():
        for future in futures:
            future.set_exception(concurrent.futures.CancelledError())
        return
    error = task.exception()
    if error is not None:
        for future in futures:
            future.set_exception(error)
        return
    for future, result in zip(futures, task.result(), strict=True):
        future.set_result(result)
