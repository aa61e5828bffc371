"""The Twisted publisher: the core's flows driven by Deferreds, sending with treq."""
# mypy: allow-untyped-calls

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import treq
from treq.client import HTTPClient
from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore, fail, gatherResults, succeed
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web import client as web
from twisted.web.http_headers import Headers
from zope.interface import implementer

from ..core import BasePublisher
from ..core.delivery import CallbackRun, Effect, FlatCalls, Flow, Gather, HTTPResult, ITransport, Send
from ..core.delivery.effects import Settle
from ..core.delivery.transport import transport_errors
from ..core.errors import TransportError
from ..core.keys import Keys
from ..core.values import DeliveryReport
from ._registry import in_thread, reactor_and_pool

__all__ = ["Publisher", "TreqTransport", "run_deferred"]

T = TypeVar("T")
#: Twisted's failures below HTTP, most specific first (the first match wins).
_KINDS: dict[type[BaseException], str] = {error.ConnectionRefusedError: "refused", CancelledError: "timeout"}
_KINDS |= dict.fromkeys((error.ConnectError, error.ConnectionClosed, web.ResponseFailed, OSError), "error")
_KINDS[web.RequestTransmissionFailed] = "error"


class Publisher(BasePublisher):
    """``notify(keys, data)`` returns a Deferred firing with a DeliveryReport.

    Sends with treq; ``client`` replaces its default ``HTTPClient`` (``StubTreq`` in
    tests, one over an Agent of your own for proxies). ``reactor`` and ``threadpool``
    (for store calls) work as in :class:`~skyhooks.twisted.Registry`.
    """

    def __init__(self, store: Any, secret: Any, *, client: HTTPClient | None = None, **options: Any) -> None:
        self._reactor, self._threadpool = reactor_and_pool(options)
        # One POST in flight per instance, not two: over treq each POST costs enough
        # that bigger batches beat the overlap (benchmarks/RESULTS.md, "the client change").
        options.setdefault("max_in_flight", 1)
        self._client, self._flat = client, FlatCalls()
        super().__init__(store, secret, **options)

    def notify(self, keys: Keys, data: Any) -> Deferred[DeliveryReport]:
        """Deliver *data* to every callback listening for any of *keys*. Fails with ``ValueError``
        or :class:`skyhooks.StoreError` before sending anything; the report has every other failure."""
        return self.notify_many([(keys, data)]).addCallback(lambda reports: reports[0])

    def notify_many(self, messages: Iterable[tuple[Keys, Any]]) -> Deferred[list[DeliveryReport]]:
        """Deliver several ``(keys, data)`` messages, a batch per instance; a report each."""
        try:
            return run_deferred(self._flow(messages), self._perform)
        except Exception:
            return fail()  # bad input fails the Deferred like any other error

    def close(self) -> Deferred[None]:
        """Close pooled connections (and the store, if opened here); fires once they are."""
        closing = self.transport.close()
        if self._owns_store:
            self.store.close()
        return closing if isinstance(closing, Deferred) else succeed(None)

    def _default_transport(self) -> TreqTransport:
        return TreqTransport(self._reactor, self._client, self.max_in_flight or self.concurrency)

    def _gather(self, gather: Gather) -> Deferred[list[Any]]:
        if len(gather.flows) <= gather.limit:  # the usual fan-out: no semaphore to pass
            return gatherResults([run_deferred(f, self._perform) for f in gather.flows], consumeErrors=True)
        semaphore = DeferredSemaphore(gather.limit)
        runs = [semaphore.run(run_deferred, flow, self._perform) for flow in gather.flows]
        return gatherResults(runs, consumeErrors=True)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return in_thread(self._reactor, self._threadpool, fn, *args)

    def _sleep(self, seconds: float) -> Deferred[None]:
        return deferLater(self._reactor, seconds)

    def _new_waiter(self) -> tuple[Deferred[Any], Callable[[Any], None]]:
        waiter: Deferred[Any] = Deferred()
        return waiter, lambda value: self._fire(waiter, value)

    def _linger(self) -> Deferred[Any]:
        # Fired after what is already queued to fire: a lane's next lead, handed
        # the lane with a POST's reply, first lets the callers answered with it
        # send again, and takes their messages along (see the Coalescer).
        waiter, resolve = self._new_waiter()
        resolve(None)
        return waiter

    def _perform(self, effect: Effect) -> Any:
        done = super()._perform(effect)
        if not isinstance(effect, Send) or not isinstance(done, Deferred):
            return done
        relay: Deferred[Any] = Deferred(lambda _: done.cancel())  # a reply is taken in as a waiter fires
        done.addBoth(lambda outcome: self._fire(relay, outcome))
        return relay

    def _fire(self, waiter: Deferred[Any], value: Any) -> None:
        # Now, not a reactor turn later (long under load): a lane's next POST leaves at once;
        # flat, so a waiter resolved by a flow a firing resumed fires after it, not inside it.
        self._flat(_settle, waiter, value, None)


@implementer(ITransport)
class TreqTransport:
    """POSTs with *client*, or a treq ``HTTPClient`` over an ``Agent`` whose persistent
    pool keeps up to *per_host* idle connections per instance."""

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


def run_deferred(flow: Flow[T], perform: Callable[[Effect], Any]) -> Deferred[T]:
    """Drive *flow* with a ``perform`` returning Deferreds or values: a Deferred of its result.
    Cancelling it closes the flow (a lane hands its work on) and cancels what it waited on."""

    def cancel(_: Deferred[T]) -> None:
        waited = run.cancel()
        if waited is not None:
            waited.cancel()

    result: Deferred[T] = Deferred(cancel)
    run = CallbackRun(flow, perform, Deferred, _wait, lambda value, exc: _settle(result, value, exc))
    run.start()
    return result


def _wait(waited: Deferred[Any], settle: Settle) -> None:
    waited.addCallbacks(lambda value: settle(value, None), lambda failure: settle(None, failure.value))


def _settle(result: Deferred[Any], value: Any, error: BaseException | None) -> None:
    if not result.called:  # (a cancelled run's Deferred has fired already)
        result.callback(value) if error is None else result.errback(Failure(error))


def _read(response: Any) -> Deferred[HTTPResult]:
    headers = {
        k.decode("latin-1"): b", ".join(v).decode("latin-1") for k, v in response.headers.getAllRawHeaders()
    }
    return treq.content(response).addCallback(lambda body: HTTPResult(response.code, headers, body))


def _translate(failure: Failure) -> None:
    with transport_errors(_KINDS):
        failure.raiseException()


def _timed_out(result: Any, timeout: float) -> Any:
    if not isinstance(result, Failure):
        return result  # answered in the very turn the timer went off
    return Failure(TransportError("timeout", f"no answer within {timeout:.1f}s"))
