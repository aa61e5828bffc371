"""The instance side: the Registry, the webhook as a WSGI app, a pywsgi server without Nagle delays."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import gevent
from gevent import monkey, pywsgi
from gevent.event import AsyncResult
from greenlet import greenlet

from ..core.callbacks import Callback
from ..core.errors import BadRequest
from ..core.interfaces import HookStore
from ..core.registry import BlockingRegistry
from ..core.values import Message
from ..core.wire import REQUEST_HEADERS, error_response

# Where the WSGI environ keeps each header the request reader asks for (PEP 3333).
_ENVIRON_KEYS = {name: "HTTP_" + name.upper().replace("-", "_") for name in REQUEST_HEADERS}
_ENVIRON_KEYS.update({"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"})


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
    """This instance's callbacks, kept in step with the shared store; ``register``,
    ``unregister`` and ``stop`` block the calling greenlet only, never the hub. Each
    callback runs in a greenlet of its own, started before the webhook is answered."""

    _new_waiter = staticmethod(new_waiter)

    def _invoke(self, callback: Callback, message: Message) -> None:
        if self._may_block():
            _Worker.hand(super()._invoke, callback, message)
        else:  # the hub itself may not be switched away from mid-request: later, then
            gevent.spawn_raw(super()._invoke, callback, message)

    def _run_blocking(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        gevent.spawn_raw(self._store_call, fn, done)

    def _store_call(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        try:
            result = call_store(self.store, fn)
        except Exception as exc:
            return done(None, exc)
        done(result, None)

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


Invoke = Callable[[Callback, Message], None]


class _Worker(greenlet):  # type: ignore[misc]
    """Runs callbacks, switched to straight from the caller, and is reused: a new
    greenlet per callback costs far more than the switch (benchmarks/RESULTS.md).
    A callback that never blocks has finished before the webhook is answered, with
    no trip around the hub's loop. One that blocks delays neither the others nor
    the answer: gevent calls ``switch_out`` as a greenlet switches to the hub, and
    the caller then goes on at the hub's next turn."""

    idle: ClassVar[list[_Worker]] = []  # parked workers of this thread's hub (gevent's hub is per thread)

    def __init__(self, hub: Any) -> None:
        super().__init__(self._work, parent=hub)
        self.hub = hub
        self.waiting: list[greenlet] = []  # the caller, while it waits for this callback

    @classmethod
    def hand(cls, invoke: Invoke, callback: Callback, message: Message) -> None:
        hub = gevent.get_hub()
        worker = next((w for w in reversed(cls.idle) if w.hub is hub), None) if cls.idle else None
        if worker is None:
            worker = cls(hub)
        else:
            cls.idle.remove(worker)
        # Emptied once the caller goes on, however it does (an exception thrown into
        # it, say), so a resume scheduled by switch_out never switches into it later.
        waiting = worker.waiting = [gevent.getcurrent()]
        try:
            worker.switch(invoke, callback, message)
        finally:
            waiting.clear()

    def _work(self, invoke: Invoke, callback: Callback, message: Message) -> None:
        while True:
            try:
                invoke(callback, message)  # (it logs what an Exception a callback raises)
            except BaseException:  # GreenletExit, gevent.Timeout: never into the caller's request
                self.hub.handle_error(self, *sys.exc_info())
            waiting, self.waiting = self.waiting, []
            caller = waiting.pop() if waiting else None
            if len(self.idle) >= 64:
                self.parent = caller or self.hub  # ending returns there
                return
            self.idle.append(self)
            invoke, callback, message = (caller or self.hub).switch()  # parked until hand() gives a job

    def switch_out(self) -> None:
        waiting, self.waiting = self.waiting, []
        if waiting:
            self.hub.loop.run_callback(_resume, waiting)


def _resume(waiting: list[greenlet]) -> None:
    if waiting:  # (empty if the caller went on already)
        waiting.pop().switch()


class WebhookApp:
    """A WSGI app that treats every request it is given as a webhook request; mount it
    at the registry URL's path: ``WSGIServer(("0.0.0.0", 8001), WebhookApp(registry))``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        reader = self.registry.reader(environ["REQUEST_METHOD"], lambda h: environ.get(_ENVIRON_KEYS[h]))
        response = reader.refusal
        if response is None:
            # At most one byte over the limit: a body of unknown length is measured, not hoarded.
            declared = reader.declared
            try:
                body = environ["wsgi.input"].read(reader.read_limit if declared is None else declared)
            except OSError as exc:  # pywsgi's bad chunked encoding
                response = error_response(BadRequest(f"unreadable body: {exc}"), close=True)
            else:
                response = reader.finish(body)
        assert response is not None  # finish() answers whatever was not refused
        # pywsgi closes the connection after an answer whose headers say "Connection: close".
        start_response(response.status_line, list(response.header_pairs))
        return [response.body]


class WSGIServer(pywsgi.WSGIServer):  # type: ignore[misc]
    """``gevent.pywsgi.WSGIServer`` with TCP_NODELAY on every connection."""

    def handle(self, sock: socket.socket, address: Any) -> None:
        # A client that writes headers and body apart (urllib3) would wait for
        # Nagle's algorithm and a delayed ACK on every request.
        with contextlib.suppress(OSError):  # not TCP: a Unix socket has no Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)
