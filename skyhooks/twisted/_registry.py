"""The instance side: the registry, the webhook resource, the request refusing big bodies early."""
# mypy: allow-untyped-calls

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any, BinaryIO, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, ITransport
from twisted.internet.threads import deferToThreadPool
from twisted.web.resource import Resource
from twisted.web.server import Request

from ..core import BaseRegistry
from ..core.delivery.effects import Settle
from ..core.wire.reader import HeaderGetter


class Registry(BaseRegistry["Deferred[Any]"]):
    """An instance's registry; ``register``, ``unregister`` and ``stop`` return Deferreds. Store calls
    run on ``threadpool`` (by default the reactor's), timers on ``reactor`` (by default the global one;
    with a ``Clock``, pass a ``threadpool``). Callbacks may return a Deferred or a coroutine."""

    def __init__(self, url: str, store: Any, secret: Any, ttl: float = 90.0, **options: Any) -> None:
        self._reactor, self._in_thread = on_reactor(options)
        super().__init__(url, store, secret, ttl, **options)

    def stop_on_shutdown(self) -> Any:
        """Make reactor shutdown wait for :meth:`stop` (at most ``stop_timeout``); the trigger's id."""
        return self._reactor.addSystemEventTrigger("before", "shutdown", self.stop)

    def _run_blocking(self, fn: Callable[[], Any], done: Settle) -> None:
        outcome(self._in_thread(fn), done)

    def _call_later(self, delay: float, fn: Callable[[], None]) -> IDelayedCall:
        return cast(IDelayedCall, self._reactor.callLater(delay, fn))

    def _new_waiter(self) -> tuple[Deferred[Any], Callable[[Any], None]]:
        waiter: Deferred[Any] = Deferred()
        return waiter, waiter.callback

    def _schedule(self, awaitable: Any, context: str) -> None:
        ensureDeferred(self._logged(awaitable, context))


class WebhookResource(Resource):
    """Answers webhook requests at its path, for any method: ``root.putChild(b"skyhooks",
    WebhookResource(registry))``. twisted.web reads a whole body (a big one into a temporary file)
    before rendering, so a 413 comes after it, unless the site's requests are :class:`WebhookRequest`."""

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
    """Answers 413 from the headers, body unread, to a webhook request declaring a body over the limit:
    ``Site(root, requestFactory=WebhookRequest.for_registry(registry))``. The length comes before the path,
    so it refuses any request with a ``webhook-id`` over *registry*'s limit (several: bind the largest's)."""

    registry: BaseRegistry[Any] | None = None
    _refused = False

    @classmethod
    def for_registry(cls, registry: BaseRegistry[Any]) -> type[WebhookRequest]:
        """The request factory refusing by *registry*'s limit."""
        return type(cls.__name__, (cls,), {"registry": registry})

    def gotLength(self, length: int | None) -> None:
        if self.registry is None:
            raise TypeError("use WebhookRequest.for_registry(registry) as the Site's requestFactory")
        # Cheap tests first: this runs for every request of the site.
        if length is None or length <= self.registry.max_body_size or not self.getHeader(b"webhook-id"):
            return super().gotLength(length)  # type: ignore[no-any-return]
        refusal = self.registry.reader("POST", _headers(self)).refusal
        assert refusal is not None  # (the reader refuses the same declared length)
        self._refused, self.content = True, BytesIO()  # (twisted.web expects a file, here left empty)
        self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" after a final answer
        cast(ITransport, self.channel.transport).write(refusal.http11())

    def handleContentChunk(self, data: bytes) -> None:
        if not self._refused:  # a refused body is dropped as it arrives, never stored
            super().handleContentChunk(data)

    def process(self) -> None:
        # Closed once the body is in: at once, unread bytes could reset it before the 413 is read.
        self.channel.loseConnection() if self._refused else super().process()


def on_reactor(options: dict[str, Any]) -> tuple[Any, Callable[..., Deferred[Any]]]:
    """The ``reactor`` option (by default the global one), out of *options*, and how to run ``fn(*args)``
    on the ``threadpool`` option (else the reactor's, asked for at the call: asking starts it)."""
    reactor, pool = options.pop("reactor", None), options.pop("threadpool", None)
    if reactor is None:
        from twisted.internet import reactor
    return reactor, lambda fn, *args: deferToThreadPool(reactor, pool or reactor.getThreadPool(), fn, *args)


def outcome(pending: Deferred[Any], settle: Settle) -> None:
    """``settle(value, None)`` or ``settle(None, exception)`` once *pending* fires."""
    pending.addCallbacks(lambda value: settle(value, None), lambda failure: settle(None, failure.value))


def _headers(request: Request) -> HeaderGetter:
    # By bytes: twisted.web decodes a header asked by str as UTF-8, raising on bad bytes.
    return lambda name: None if (v := request.getHeader(name.encode())) is None else v.decode("latin-1")
