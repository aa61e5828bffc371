"""The Twisted publisher: the core's flows driven by Deferreds, sending with treq."""
# mypy: allow-untyped-calls

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import treq
from treq.client import HTTPClient
from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web import client as web
from twisted.web.http_headers import Headers
from zope.interface import implementer

from ..core.callback_publisher import CallbackPublisher
from ..core.delivery import HTTPResult, ITransport, transport_errors
from ..core.delivery.effects import Settle
from ..core.errors import TransportError
from ..core.keys import Keys
from ..core.values import DeliveryReport
from ._registry import on_reactor, outcome

#: Twisted's failures below HTTP, most specific first (the first match wins).
_KINDS: dict[type[BaseException], str] = {error.ConnectionRefusedError: "refused", CancelledError: "timeout"}
_KINDS |= dict.fromkeys((error.ConnectError, error.ConnectionClosed, web.ResponseFailed, OSError), "error")
_KINDS[web.RequestTransmissionFailed] = "error"


class Publisher(CallbackPublisher):
    """``notify(keys, data)`` returns a Deferred firing with a DeliveryReport (``notify_many``: a list;
    ``close``: once closed). Sends with treq; ``client`` replaces its ``HTTPClient`` (``StubTreq`` in tests,
    one over your own Agent for proxies); ``reactor`` and ``threadpool`` work as in :class:`Registry`."""

    _pending_type = Deferred
    _when_settled = staticmethod(outcome)
    if TYPE_CHECKING:  # the core's methods, as a Twisted caller's type checker should see them

        def notify(self, keys: Keys, data: Any) -> Deferred[DeliveryReport]: ...
        def notify_many(self, messages: Iterable[tuple[Keys, Any]]) -> Deferred[list[DeliveryReport]]: ...
        def close(self) -> Deferred[None]: ...

    def __init__(self, store: Any, secret: Any, *, client: HTTPClient | None = None, **options: Any) -> None:
        self._reactor, self._in_thread = on_reactor(options)
        # One POST in flight per instance, not two: over treq each POST costs enough
        # that bigger batches beat the overlap (benchmarks/RESULTS.md, "the client change").
        options.setdefault("max_in_flight", 1)
        self._client = client
        super().__init__(store, secret, **options)

    def _default_transport(self) -> TreqTransport:
        return TreqTransport(self._reactor, self._client, self.max_in_flight or self.concurrency)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return self._in_thread(fn, *args)

    def _sleep(self, seconds: float) -> Deferred[None]:
        return deferLater(self._reactor, seconds)

    def _new_pending(self, cancel: Callable[[Any], None] | None) -> tuple[Deferred[Any], Settle]:
        pending: Deferred[Any] = Deferred(cancel)

        def settle(value: Any, error: BaseException | None) -> None:
            if not pending.called:  # (a cancelled Deferred has fired already)
                pending.callback(value) if error is None else pending.errback(Failure(error))

        return pending, settle


@implementer(ITransport)
class TreqTransport:
    """POSTs with *client*, or treq over an ``Agent`` pooling *per_host* idle connections per instance."""

    def __init__(self, reactor: Any, client: HTTPClient | None = None, per_host: int = 2) -> None:
        self._reactor, self._pool = reactor, web.HTTPConnectionPool(reactor)
        self._pool.maxPersistentPerHost = per_host
        self._client = client or HTTPClient(web.Agent(reactor, pool=self._pool))

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> Deferred[Any]:
        raw = Headers({name: [value] for name, value in headers.items()})

        def send() -> Deferred[Any]:
            return self._client.post(url, data=body, headers=raw, allow_redirects=False, unbuffered=True)

        def again(failure: Failure) -> Any:
            # Never answered (nor cancelled): most often a pooled connection the instance
            # closed while idle. One more try is safe: receivers drop duplicate ids.
            failure.trap(web.ResponseNeverReceived, web.RequestTransmissionFailed)
            cancelled = any(why.check(CancelledError) for why in getattr(failure.value, "reasons", ()))
            return failure if cancelled else send()

        exchange = send().addErrback(again).addCallback(_read).addErrback(_translate)
        return exchange.addTimeout(timeout, self._reactor, _timed_out)

    def close(self) -> Any:
        """Close the pooled connections: a Deferred firing once they are closed."""
        return self._pool.closeCachedConnections()


def _read(response: Any) -> Deferred[HTTPResult]:
    raw = response.headers.getAllRawHeaders()
    headers = {name.decode("latin-1"): b", ".join(values).decode("latin-1") for name, values in raw}
    return treq.content(response).addCallback(lambda body: HTTPResult(response.code, headers, body))


def _translate(failure: Failure) -> None:
    with transport_errors(_KINDS):
        failure.raiseException()


def _timed_out(result: Any, timeout: float) -> Any:
    if not isinstance(result, Failure):
        return result  # answered in the very turn the timer went off
    return Failure(TransportError("timeout", f"no answer within {timeout:.1f}s"))
