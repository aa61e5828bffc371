"""The gevent Registry: greenlet timers, cooperative store calls, blocking waits."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cached_property
from typing import Any

import gevent
from gevent import get_hub
from gevent.event import AsyncResult
from greenlet import getcurrent, greenlet

from ..core.callbacks import Callback
from ..core.keys import Keys
from ..core.registry import BaseRegistry, Resolve
from ..core.values import Message
from ._hub import StoreCaller, in_hub, store_caller


class _Timer(gevent.Greenlet):  # type: ignore[misc]
    """A greenlet started by ``spawn_later``, with the ``cancel()`` the core expects."""

    def cancel(self) -> None:
        self.kill(block=False)


class Registry(BaseRegistry[Any]):
    """This instance's callbacks, kept in step with the shared store, for gevent.

    Import it only after ``gevent.monkey.patch_all()`` (see :mod:`skyhooks.gevent`).
    ``register``, ``unregister`` and ``stop`` take effect locally at once and
    then block the calling greenlet (only) until the store has caught up, at
    most *timeout* seconds (``None``: no limit; ``0``: do not wait). They return
    True once the store is up to date (for ``stop``: once it forgot this URL)
    and False if that has not happened yet; the store keeps being retried in
    the background either way. They never wait before ``start()`` (the store is
    written then), nor when called from the hub itself, where nothing may block.
    Every callback runs in a greenlet of its own, started before the webhook is
    answered: one that does not block has finished by then.
    """

    _started = False

    @cached_property
    def _call_store(self) -> StoreCaller[Any]:
        return store_caller(self.store)

    @cached_property
    def _runner(self) -> _CallbackRunner:
        return _CallbackRunner(gevent.get_hub(), super()._invoke)

    def start(self) -> None:
        super().start()
        self._started = True

    def register(self, keys: Keys, callback: Callback, timeout: float | None = None) -> bool:
        return self._wait(super().register(keys, callback), timeout, self._started)

    def unregister(self, keys: Keys, callback: Callback, timeout: float | None = None) -> bool:
        return self._wait(super().unregister(keys, callback), timeout, self._started)

    def stop(self, timeout: float | None = None) -> bool:
        waiter = super().stop()
        return self._wait(waiter, timeout, True) and bool(waiter.value)

    @staticmethod
    def _wait(waiter: AsyncResult, timeout: float | None, may_wait: bool) -> bool:
        if may_wait and timeout != 0 and not waiter.ready() and not in_hub():
            waiter.wait(timeout)
        return bool(waiter.ready())

    # -- hooks --------------------------------------------------------------------

    def _run_blocking(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        gevent.spawn(self._store_call, fn, done)

    def _store_call(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        try:
            result = self._call_store(fn)
        except Exception as exc:
            done(None, exc)
        else:
            done(result, None)

    def _call_later(self, delay: float, fn: Callable[[], None]) -> _Timer:
        timer: _Timer = _Timer.spawn_later(delay, fn)
        return timer

    def _new_waiter(self) -> tuple[AsyncResult, Resolve]:
        waiter = AsyncResult()
        return waiter, waiter.set

    def _invoke(self, callback: Callback, message: Message) -> None:
        # A greenlet each, so a slow or blocking-on-I/O callback delays neither
        # the others nor the webhook's answer.
        runner = self._runner
        hub = runner.hub
        current = getcurrent()
        # Not the hub, and its thread's: in_hub(), inlined (once per callback).
        # A greenlet the hub started (a server's handler) says so by its parent
        # alone, which spares the thread's hub lookup.
        if current.parent is hub or (hub is get_hub() and current is not hub):
            runner.run(callback, message)
            return
        # The hub itself, which must not be switched away from mid-callback
        # (or another thread's hub): a greenlet of gevent's, started later.
        gevent.spawn(runner.invoke, callback, message)
        if not in_hub():
            gevent.sleep(0)  # started before the caller answers


class _CallbackRunner:
    """Runs each callback at once in a greenlet of its own, reusing idle ones.

    A slow or blocking-on-I/O callback delays neither the others nor the
    webhook's answer: a worker that blocks switches to the hub, and gevent
    first calls the worker's ``switch_out``, which has the hub resume the
    caller. A worker that does not block switches straight back when done,
    and the hub never gets involved. That replaces a ``gevent.spawn`` (a new
    greenlet) per callback and a ``gevent.sleep(0)`` (a trip around the hub's
    loop) per request, about a third of the gevent adapter's cost per webhook.
    """

    #: Idle workers kept for reuse; more only after a burst of blocking callbacks.
    MAX_IDLE = 64

    def __init__(self, hub: Any, invoke: Callable[[Callback, Message], None]) -> None:
        self.hub = hub
        self.invoke = invoke  # never raises an Exception: it logs
        self._idle: list[_Worker] = []

    def run(self, callback: Callback, message: Message) -> None:
        """Run ``invoke(callback, message)`` in a worker; return once it finished or blocked."""
        worker = self._idle.pop() if self._idle else _Worker(self)
        waiting = worker.waiting = [getcurrent()]  # emptied once this caller no longer waits
        try:
            worker.switch(callback, message)
        finally:
            waiting.clear()

    def work(self, callback: Callback, message: Message) -> None:
        worker: _Worker = getcurrent()
        hub = self.hub
        while True:
            try:
                self.invoke(callback, message)
            except BaseException:  # what a gevent.Greenlet would do with it: report, or raise in main
                hub.handle_error(worker, *sys.exc_info())
            waiting, worker.waiting = worker.waiting, None
            caller = waiting.pop() if waiting else None
            if len(self._idle) >= self.MAX_IDLE:
                if caller is not None:
                    worker.parent = caller  # ending returns to the parent
                return
            self._idle.append(worker)
            # Parked here until the next run() hands over its job.
            callback, message = (caller or hub).switch()


class _Worker(greenlet):  # type: ignore[misc]
    """A runner's greenlet; ``waiting`` holds the caller while it waits for this one."""

    def __init__(self, runner: _CallbackRunner) -> None:
        super().__init__(runner.work, parent=runner.hub)
        self.hub = runner.hub
        self.waiting: list[greenlet] | None = None

    def switch_out(self) -> None:
        # gevent calls this as the greenlet switches to the hub: the callback
        # blocked (or this worker parks, with nobody waiting). The caller goes
        # on at the hub's next turn rather than wait for the callback.
        waiting, self.waiting = self.waiting, None
        if waiting:
            self.hub.loop.run_callback(_resume, waiting)


def _resume(waiting: list[greenlet]) -> None:
    # Run by the hub once a worker blocked: the caller goes on without it,
    # unless it went on already (emptied by run()).
    if waiting:
        waiting.pop().switch()
