"""The instance side: the registry (store calls on a thread pool, timers and waiters on
the reactor), the webhook resource, and the request that refuses big bodies early."""
# mypy: allow-untyped-calls

from __future__ import annotations

import logging
from collections.abc import Callable
from io import BytesIO
from typing import Any, BinaryIO, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, ITransport
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request

from ..core import BaseRegistry
from ..core.registry import Resolve
from ..core.wire.reader import HeaderGetter

__all__ = ["Registry", "WebhookRequest", "WebhookResource", "in_thread", "reactor_and_pool"]

log = logging.getLogger("skyhooks.registry")  # the core's: every registry logs in one place


class Registry(BaseRegistry["Deferred[Any]"]):
    """An instance's registry; ``register``, ``unregister`` and ``stop`` return Deferreds.

    Store calls run on ``threadpool`` (by default the reactor's), timers on ``reactor``
    (by default the global one; tests may pass a ``Clock``, and then a ``threadpool``).
    Callbacks may return a Deferred or a coroutine; their failures are logged.
    """

    def __init__(self, url: str, store: Any, secret: Any, ttl: float = 90.0, **options: Any) -> None:
        self._reactor, self._threadpool = reactor_and_pool(options)
        super().__init__(url, store, secret, ttl, **options)

    def stop_on_shutdown(self) -> Any:
        """Make reactor shutdown wait for :meth:`stop` (at most ``stop_timeout``); the trigger's id."""
        return self._reactor.addSystemEventTrigger("before", "shutdown", self.stop)

    def _run_blocking(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        in_thread(self._reactor, self._threadpool, fn).addCallbacks(
            lambda result: done(result, None), lambda f: done(None, f.value)
        )

    def _call_later(self, delay: float, fn: Callable[[], None]) -> IDelayedCall:
        return cast(IDelayedCall, self._reactor.callLater(delay, fn))

    def _new_waiter(self) -> tuple[Deferred[Any], Resolve]:
        waiter: Deferred[Any] = Deferred()
        return waiter, waiter.callback

    def _schedule(self, awaitable: Any, context: str) -> None:
        ensureDeferred(_awaited(awaitable)).addErrback(_log_failure, context)


class WebhookResource(Resource):
    """Answers webhook requests at the path it is mounted at, for any method:
    ``root.putChild(b"skyhooks", WebhookResource(registry))``. twisted.web reads a whole
    body (a big one into a temporary file) before rendering, so a 413 comes after it,
    unless the site's requests are :class:`WebhookRequest`."""

    isLeaf = True

    def __init__(self, registry: BaseRegistry[Any]) -> None:
        super().__init__()
        self.registry = registry

    def render(self, request: Request) -> bytes:
        reader = self.registry.reader(request.method.decode("latin-1"), _headers(request))
        # The body is in already: even after a refusal, the connection can serve the next request.
        response = reader.refusal or reader.finish(cast(BinaryIO, request.content).read(reader.read_limit))
        assert response is not None  # finish() is None only after a refusal
        request.setResponseCode(response.status)
        for name, value in response.headers.items():
            request.setHeader(name, value)
        return response.body


class WebhookRequest(Request):
    """A ``Request`` that answers 413 from the headers, the body left unread, when a
    webhook request declares a body over the registry's limit:
    ``Site(root, requestFactory=WebhookRequest.for_registry(registry))``.

    When twisted.web learns a request's length it has its headers, not yet its
    path (only the channel's private state does), so which resource the request
    is for is unknown: this refuses requests carrying a ``webhook-id`` header
    (Standard Webhooks deliveries) over *registry*'s limit, and leaves the
    site's other requests alone. With several registries, bind the largest
    limit's: each resource still applies its own once the body is in.
    """

    registry: BaseRegistry[Any] | None = None
    _refused = False

    @classmethod
    def for_registry(cls, registry: BaseRegistry[Any]) -> type[WebhookRequest]:
        """The request factory refusing by *registry*'s limit."""
        return type(cls.__name__, (cls,), {"registry": registry})

    def gotLength(self, length: int | None) -> None:
        if self.registry is None:
            raise TypeError("use WebhookRequest.for_registry(registry) as the Site's requestFactory")
        refusal = None  # (the reader's own test first, cheaply: this runs for every request of the site)
        if length is not None and length > self.registry.max_body_size and self.getHeader(b"webhook-id"):
            refusal = self.registry.reader("POST", _headers(self)).refusal
        if refusal is None:
            return super().gotLength(length)  # type: ignore[no-any-return]
        self._refused, self.content = True, BytesIO()  # (twisted.web expects a file, here left empty)
        self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" after a final answer
        cast(ITransport, self.channel.transport).write(refusal.http11())

    def handleContentChunk(self, data: bytes) -> None:
        if not self._refused:  # a refused body is dropped as it arrives, never stored
            super().handleContentChunk(data)

    def process(self) -> None:
        # Closing once the body is in, not right after answering, keeps the kernel from
        # resetting the connection over unread bytes before the client reads its 413.
        self.channel.loseConnection() if self._refused else super().process()


def in_thread(reactor: Any, threadpool: Any, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """``fn(*args)`` on *threadpool*, else the reactor's (asked only now: asking starts it)."""
    return deferToThreadPool(reactor, threadpool or reactor.getThreadPool(), fn, *args)


def reactor_and_pool(options: dict[str, Any]) -> tuple[Any, Any]:
    """The ``reactor`` (by default the global one) and ``threadpool`` options, out of *options*."""
    reactor = options.pop("reactor", None)
    if reactor is None:
        from twisted.internet import reactor
    return reactor, options.pop("threadpool", None)


def _headers(request: Request) -> HeaderGetter:
    # By bytes: twisted.web decodes a header asked by str as UTF-8, raising on bad bytes.
    return lambda name: (
        None if (value := request.getHeader(name.encode())) is None else value.decode("latin-1")
    )


async def _awaited(awaitable: Any) -> Any:
    return await awaitable  # one path for coroutines, Deferreds and other awaitables


def _log_failure(failure: Failure, context: str) -> None:
    log.error("%s failed", context, exc_info=failure.value)
