"""The instance side: the Registry, how its callbacks run, a pywsgi server without Nagle delays."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any, ClassVar

import gevent
from gevent import monkey, pywsgi
from gevent.event import AsyncResult
from greenlet import greenlet

from ..core.callbacks import Callback
from ..core.interfaces import HookStore
from ..core.registry import BlockingRegistry
from ..core.values import Message

Invoke = Callable[[Callback, Message], None]


def call_store(store: HookStore, fn: Callable[[], Any]) -> Any:
    """``fn()``, a call of *store*'s, blocking only this greenlet: in the hub's thread if the store
    yields (patched pymongo: its sockets are this hub's), else in the thread pool (sqlite3; unpatched)."""
    if monkey.is_module_patched("socket") and not store.blocks_natively:
        return fn()
    return gevent.get_hub().threadpool.apply(fn)


def new_waiter() -> tuple[AsyncResult, Callable[[Any], None]]:
    """A gevent waiter: never a lock, which would block the hub where threading is not patched."""
    waiter = AsyncResult()
    return waiter, waiter.set


class _Timer(gevent.Greenlet):  # type: ignore[misc]
    def cancel(self) -> None:
        self.kill(block=False)


class Registry(BlockingRegistry[AsyncResult]):
    """This instance's callbacks, kept in step with the shared store; ``register``, ``unregister``
    and ``stop`` block the calling greenlet only, never the hub. Each callback runs in a greenlet,
    switched to before the webhook is answered; one that blocks holds up neither the answer nor
    the other callbacks."""

    _new_waiter = staticmethod(new_waiter)

    def _invoke(self, callback: Callback, message: Message) -> None:
        hub, current = gevent.get_hub(), gevent.getcurrent()
        if current is not hub:
            _Worker.hand(hub, current, self._invoke_here, callback, message)
        else:  # the hub itself may not be switched away from mid-request: later, then
            gevent.spawn_raw(self._invoke_here, callback, message)

    def _invoke_here(self, callback: Callback, message: Message) -> None:
        super()._invoke(callback, message)

    def _run_blocking(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        gevent.spawn_raw(self._report, lambda: call_store(self.store, fn), done)

    def _call_later(self, delay: float, fn: Callable[[], None]) -> _Timer:
        return _Timer.spawn_later(delay, fn)  # type: ignore[no-any-return]

    def _wait(self, waiter: AsyncResult, timeout: float | None) -> bool:
        if timeout != 0:
            waiter.wait(timeout)
        return bool(waiter.ready())

    def _may_block(self) -> bool:
        return gevent.getcurrent() is not gevent.get_hub()

    @staticmethod
    def _value(waiter: AsyncResult) -> Any:
        return waiter.value


class _Worker(greenlet):  # type: ignore[misc]
    """Runs callbacks, switched to straight from the caller, and is reused: a new greenlet per
    callback costs far more than the switch (benchmarks/RESULTS.md). A callback that never blocks
    is done before the webhook is answered, with no trip round the hub's loop; one that blocks
    holds up nothing: gevent calls ``switch_out`` as it switches to the hub, and the caller goes
    on at the hub's next turn."""

    idle: ClassVar[dict[Any, list[_Worker]]] = {}  # parked workers per hub (a hub is per thread)
    waiting: list[greenlet]  # the caller, while it waits for this callback

    @classmethod
    def hand(cls, hub: Any, caller: greenlet, invoke: Invoke, callback: Callback, message: Message) -> None:
        idle = cls.idle.get(hub)
        worker = idle.pop() if idle else cls(parent=hub)
        # Emptied once the caller goes on, however it does (an exception thrown into it, say),
        # so a resume scheduled by switch_out never switches into it later.
        waiting = worker.waiting = [caller]
        try:
            worker.switch(invoke, callback, message)
        finally:
            waiting.clear()

    def run(self, invoke: Invoke, callback: Callback, message: Message) -> None:
        hub = gevent.get_hub()
        idle = self.idle.setdefault(hub, [])
        while True:
            try:
                invoke(callback, message)  # (it logs what an Exception a callback raises)
            except BaseException as exc:  # GreenletExit, gevent.Timeout: never into the caller's request
                hub.handle_error(self, type(exc), exc, exc.__traceback__)
            waiting, self.waiting = self.waiting, []
            caller = waiting.pop() if waiting else None
            if len(idle) >= 64:
                self.parent = caller or hub  # ending returns there
                return
            idle.append(self)
            invoke, callback, message = (caller or hub).switch()  # parked until hand() gives a job

    def switch_out(self) -> None:
        waiting, self.waiting = self.waiting, []
        if waiting:  # (emptied by then if the caller went on already)
            gevent.get_hub().loop.run_callback(lambda: waiting and waiting.pop().switch())


class WSGIServer(pywsgi.WSGIServer):  # type: ignore[misc]
    """``gevent.pywsgi.WSGIServer`` with TCP_NODELAY on every connection: a client that writes
    headers and body apart (urllib3) would otherwise wait for Nagle and a delayed ACK each time."""

    def handle(self, sock: socket.socket, address: Any) -> None:
        with contextlib.suppress(OSError):  # not TCP: a Unix socket has no Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)
