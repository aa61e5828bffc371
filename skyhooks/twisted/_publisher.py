"""The Twisted publisher: the core's flows driven by Deferreds, over a small HTTP/1.1 client (or treq)."""
# mypy: allow-untyped-calls
# (much of twisted.web and treq is unannotated)

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import treq
from treq.client import HTTPClient
from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore, fail, gatherResults, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web._newclient import RequestNotSent  # raised through twisted.web.client, not exported there
from twisted.web.client import (
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers

from ..core import BasePublisher
from ..core.delivery import Effect, Flow, Gather, HTTPResult, Send
from ..core.errors import TransportError
from ..core.keys import Keys
from ..core.values import DeliveryReport
from ._http import Http1Pool

__all__ = ["Publisher"]

T = TypeVar("T")


class Publisher(BasePublisher):
    """``notify(keys, data)`` returns a Deferred firing with a DeliveryReport.

    Requests go over skyhooks' own small HTTP/1.1 keep-alive client
    (``skyhooks/twisted/_http.py``). ``client`` takes a treq ``HTTPClient``
    instead (``treq.testing.StubTreq`` in tests, or one with an Agent of your
    own for proxies); ``reactor`` and ``threadpool`` (for store calls) work as
    in :class:`~skyhooks.twisted.Registry`.
    """

    def __init__(
        self,
        store: Any,
        secret: str | bytes,
        *,
        reactor: Any = None,
        client: HTTPClient | None = None,
        threadpool: ThreadPool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(store, secret, **options)
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._threadpool = threadpool
        # By default, skyhooks' own HTTP/1.1 client (less than half treq's CPU per POST here).
        self._http = Http1Pool(reactor, self.concurrency) if client is None else None
        self._client = client
        self._firing: deque[tuple[Deferred[Any], Any]] = deque()  # waiters resolved, to fire
        self._in_fire = False

    def notify(self, keys: Keys, data: Any) -> Deferred[DeliveryReport]:
        """Deliver *data* to every callback listening for any of *keys*.

        Fails with ``ValueError`` for bad keys or data and with
        :class:`skyhooks.StoreError` when the store cannot be read, before
        sending anything; every other failure is in the report.
        """
        return self._notify_many([(keys, data)]).addCallback(_first)

    def notify_many(self, messages: Iterable[tuple[Keys, Any]]) -> Deferred[list[DeliveryReport]]:
        """Deliver several ``(keys, data)`` messages: one lookup, one POST per
        instance (a batch where an instance gets more than one); a Deferred
        firing with a report per message."""
        return self._notify_many(list(messages))

    def _notify_many(self, messages: list[tuple[Keys, Any]]) -> Deferred[list[DeliveryReport]]:
        try:
            flow = self._flow(messages)
        except Exception:
            return fail()  # bad input fails the Deferred like any other error
        return self._run(flow)

    def close(self) -> Deferred[None]:
        """Close pooled connections (and the store, if opened here)."""
        self._close_store()
        if self._http is not None:
            self._http.close()
        return succeed(None)

    def _gather(self, gather: Gather) -> Deferred[list[Any]]:
        semaphore = DeferredSemaphore(gather.limit)
        runs = [semaphore.run(self._run, flow) for flow in gather.flows]
        return gatherResults(runs, consumeErrors=True)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        pool = self._threadpool or self._reactor.getThreadPool()
        return deferToThreadPool(self._reactor, pool, fn, *args)

    def _done(self, value: Any) -> Any:
        return value  # run_deferred takes a plain value as an effect already done

    def _sleep(self, seconds: float) -> Deferred[None]:
        return deferLater(self._reactor, seconds, lambda: None)

    def _new_waiter(self) -> tuple[Deferred[Any], Callable[[Any], None]]:
        waiter: Deferred[Any] = Deferred()

        def resolve(value: Any) -> None:
            self._firing.append((waiter, value))
            if not self._in_fire:
                self._fire()

        return waiter, resolve

    def _fire(self) -> None:
        # Now, not on a later reactor turn: a lane's next POST leaves as soon as
        # the last one's reply is read (waiting a turn, long under load, cost a
        # quarter of the throughput, with the client's deferred write). But never
        # nested: a waiter resolved by a flow that a firing resumed is fired by
        # this loop, after it, so chains of batches cannot deepen the stack.
        self._in_fire = True
        try:
            while self._firing:
                waiter, value = self._firing.popleft()
                if not waiter.called:  # a cancelled caller's Deferred has fired already
                    waiter.callback(value)
        finally:
            self._in_fire = False

    def _run(self, flow: Flow[Any]) -> Deferred[Any]:
        return run_deferred(flow, self._perform)

    def _send(self, send: Send) -> Deferred[HTTPResult]:
        if self._http is not None:
            return self._http.post(send.url, send.headers, send.body, send.timeout)
        assert self._client is not None
        return self._send_with_treq(self._client, send)

    def _send_with_treq(self, client: HTTPClient, send: Send) -> Deferred[HTTPResult]:
        expired = False
        headers = Headers({name: [value] for name, value in send.headers.items()})

        def post() -> Deferred[Any]:
            return client.post(send.url, data=send.body, headers=headers, allow_redirects=False)

        def retry_stale(failure: Failure) -> Any:
            # Most often a keep-alive connection the instance closed while idle:
            # one immediate retry on a fresh connection is safe, because
            # receivers drop duplicate webhook-ids.
            failure.trap(ResponseNeverReceived, RequestNotSent)
            return failure if expired else post()

        def expire() -> None:
            nonlocal expired
            expired = True
            exchange.cancel()

        def translate(failure: Failure) -> Any:
            return _transport_error(failure, f"no answer within {send.timeout:.1f}s" if expired else None)

        exchange = post().addErrback(retry_stale).addCallback(_read)
        timer = self._reactor.callLater(send.timeout, expire)
        exchange.addBoth(_cancelling, timer)
        return exchange.addErrback(translate)


def run_deferred(flow: Flow[T], perform: Callable[[Effect], Deferred[Any]]) -> Deferred[T]:
    """Drive *flow* with a ``perform`` that returns Deferreds: a Deferred of its result.

    What :func:`~skyhooks.core.delivery.run_async` does under
    ``Deferred.fromCoroutine``, without a coroutine between the flow and its
    Deferreds: an effect done already (a plain value, or a Deferred fired
    already) goes straight back into the flow, and one still waiting costs one
    ``addBoth``, where ``Deferred.fromCoroutine`` costs a trampoline per await.
    Cancelling the result closes the flow and cancels what it waited on.
    """
    waiting: list[Deferred[Any] | None] = [None]  # the effect's Deferred, while the flow waits on it
    cancelled = False

    def cancel(_: Deferred[T]) -> None:
        # As run_async does for a cancelled task: close the flow, so its cleanups
        # run now (a lane hands its work on) and it learns nothing more; then stop
        # what it waited on. Twisted then fails `result` with CancelledError.
        nonlocal cancelled
        cancelled = True
        effect, waiting[0] = waiting[0], None
        flow.close()
        if effect is not None:
            effect.cancel()

    result: Deferred[T] = Deferred(cancel)

    def advance(value: Any, error: BaseException | None) -> None:
        while True:
            try:
                effect = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                result.callback(stop.value)
                return
            except BaseException:
                result.errback(Failure())
                return
            try:
                pending = perform(effect)
            except Exception as exc:
                value, error = None, exc
                continue
            if not isinstance(pending, Deferred):  # done already (a store read in place)
                value, error = pending, None
                continue
            # The trick of inlineCallbacks: learn whether it fires within addBoth.
            now: list[Any] = []

            def resume(outcome: Any, now: list[Any] = now) -> None:
                if not now:
                    now.append(outcome)  # fired at once: the loop below takes it
                    return
                if cancelled:
                    return  # the flow is closed; this is the effect's own cancellation
                waiting[0] = None
                if isinstance(outcome, Failure):
                    advance(None, outcome.value)
                else:
                    advance(outcome, None)

            pending.addBoth(resume)
            if not now:
                now.append(None)  # (marks "not at once" for resume)
                waiting[0] = pending
                return
            outcome = now[0]
            if isinstance(outcome, Failure):
                value, error = None, outcome.value
            else:
                value, error = outcome, None

    advance(None, None)
    return result


def _first(reports: list[DeliveryReport]) -> DeliveryReport:
    return reports[0]


def _read(response: Any) -> Deferred[HTTPResult]:
    headers = {
        name.decode("latin-1"): b", ".join(values).decode("latin-1")
        for name, values in response.headers.getAllRawHeaders()
    }
    return treq.content(response).addCallback(lambda body: HTTPResult(response.code, headers, body))


def _cancelling(result: Any, timer: Any) -> Any:
    if timer.active():
        timer.cancel()
    return result


#: Twisted and treq failures below HTTP, most specific first, and the kind the core retries on.
_TRANSPORT_KINDS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((error.ConnectionRefusedError,), "refused"),
    ((DeferredTimeoutError, error.TimeoutError, CancelledError), "timeout"),
    (
        (
            error.ConnectError,
            error.ConnectionClosed,
            ResponseFailed,  # also ResponseNeverReceived
            RequestTransmissionFailed,
            RequestNotSent,
            SchemeNotSupported,
            OSError,  # DNS lookup failures among others
        ),
        "error",
    ),
)


def _transport_error(failure: Failure, timed_out: str | None) -> Failure:
    """Raise the TransportError for a failure below HTTP; pass anything else on.

    *timed_out* says why, when our own timer cancelled the exchange: whatever
    twisted raised then (CancelledError, ResponseNeverReceived...) is a timeout.
    """
    exc = failure.value
    if timed_out:
        raise TransportError("timeout", timed_out) from exc
    for classes, kind in _TRANSPORT_KINDS:
        if isinstance(exc, classes):
            raise TransportError(kind, _describe(exc)) from exc
    return failure  # not a transport failure: an adapter bug, which the core logs


def _describe(exc: BaseException) -> str:
    # twisted.web wraps the real causes in a list of Failures.
    reasons = getattr(exc, "reasons", None)
    if reasons:
        return "; ".join(f"{type(r.value).__name__}: {r.value}" for r in reasons)
    return str(exc) or type(exc).__name__
