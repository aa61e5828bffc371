"""A small HTTP/1.1 keep-alive client on Twisted protocols: the Twisted publisher's default.

The protocol is :mod:`skyhooks.core.http1` (sans-IO, shared with the Tornado
publisher's client); this adds a ``Protocol`` per connection, pooled per
origin, one write per request and one ``callLater`` per request for the
timeout. treq (``Publisher(client=...)``) spent most of a publisher's CPU per
message in Agent machinery a webhook POST does not need.
"""
# mypy: allow-untyped-calls
# (much of twisted is unannotated)

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.endpoints import connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import BrowserLikePolicyForHTTPS

from ..core.delivery import HTTPResult
from ..core.errors import TransportError
from ..core.http1 import IdleConnections, Reply, ReplyParser, Stale, request_bytes
from ..core.urls import Origin, split_target
from ._endpoints import endpoint_for

__all__ = ["Http1Pool"]


class _Connection(Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self) -> None:
        self.closed = False
        self.expired = False
        self._parser = ReplyParser()
        self._waiting: Deferred[Reply] | None = None

    transport: Any  # an ITCPTransport (or TLS over one) once connected

    def connectionMade(self) -> None:
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)

    def exchange(self, request: bytes) -> Deferred[Reply]:
        self._parser = ReplyParser()
        self._waiting = Deferred()
        transport = self.transport
        transport.write(request)
        # Twisted buffers a write until the reactor's next turn, and under load a
        # turn is long: the instance would wait for the request meanwhile (a
        # POST that a lane hands on left a turn late; with this and the
        # publisher's waiters fired at once, unbatched notify() into Tornado
        # went from 4,902 to 6,499 msg/s in an interleaved A/B here).
        # A plain TCP descriptor is written now, as the reactor would; what it
        # cannot take stays buffered for the reactor. TLS has no descriptor here.
        do_write = getattr(transport, "doWrite", None)
        if do_write is not None and not transport.disconnecting and do_write():
            transport.startWriting()  # a failure: the reactor's own write finds it and disconnects
        return self._waiting

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._waiting is None:  # nothing was asked: a confused server
            self.abort()
            return
        try:
            self._parser.feed(data)
        except ValueError as exc:
            self._fail(TransportError("error", f"unusable reply: {exc}"))
            self.abort()
            return
        reply = self._parser.reply
        if reply is not None:
            waiting, self._waiting = self._waiting, None
            waiting.callback(reply)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed = True
        if self._waiting is None:
            return
        if self.expired:
            self._fail(TimeoutError())
        elif not self._parser.started:
            self._fail(Stale())
        else:
            try:
                self._parser.eof()
            except ValueError as exc:
                self._fail(TransportError("error", f"unusable reply: {exc}"))
            else:
                waiting, self._waiting = self._waiting, None
                assert self._parser.reply is not None
                waiting.callback(self._parser.reply)

    def _fail(self, exc: BaseException) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(Failure(exc))


class Http1Pool:
    """POSTs over pooled keep-alive connections, at most *per_origin* idle per instance."""

    def __init__(self, reactor: Any, per_origin: int) -> None:
        self._reactor = reactor
        self._idle: IdleConnections[_Connection] = IdleConnections(per_origin, _Connection.abort)
        self._tls = BrowserLikePolicyForHTTPS()

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> Deferred[HTTPResult]:
        """POST *body*; fires with an :class:`HTTPResult` whatever the status, or
        fails with :class:`TransportError`."""
        try:
            origin, path = split_target(url)
            request = request_bytes(origin, path, headers, body)
        except TransportError:  # a line break in a header: nothing was sent
            return fail()
        return self._send(origin, request, timeout)

    def close(self) -> None:
        self._idle.close()

    def _send(self, origin: Origin, request: bytes, timeout: float) -> Deferred[HTTPResult]:
        # Callbacks, not a coroutine: a POST over a pooled connection, the usual
        # case, then costs no trampoline. A stale pooled connection (closed by
        # the instance while idle) is passed over for the next, or a fresh one.
        while (conn := self._idle.take(origin)) is not None:
            if conn.closed:
                continue

            def stale(failure: Failure) -> Deferred[HTTPResult]:
                failure.trap(Stale)
                return self._send(origin, request, timeout)

            return self._exchange(origin, conn, request, timeout).addErrback(stale)
        return Deferred.fromCoroutine(self._send_fresh(origin, request, timeout))

    async def _send_fresh(self, origin: Origin, request: bytes, timeout: float) -> HTTPResult:
        conn = await self._connect(origin, timeout)
        try:
            return await self._exchange(origin, conn, request, timeout)
        except Stale as exc:
            raise TransportError("error", "the connection closed before any reply") from exc

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:
        endpoint = endpoint_for(self._reactor, origin, self._tls, timeout)
        connecting = connectProtocol(endpoint, _Connection())
        connecting.addTimeout(timeout, self._reactor)
        try:
            conn: _Connection = await connecting
        except error.ConnectionRefusedError as exc:
            raise TransportError("refused", str(exc)) from exc
        except (DeferredTimeoutError, error.TimeoutError, CancelledError) as exc:
            raise TransportError("timeout", f"no connection within {timeout:.1f}s") from exc
        except (error.ConnectError, OSError) as exc:  # DNS failure, unreachable...
            raise TransportError("error", str(exc) or type(exc).__name__) from exc
        return conn

    def _exchange(
        self, origin: Origin, conn: _Connection, request: bytes, timeout: float
    ) -> Deferred[HTTPResult]:
        def expire() -> None:
            conn.expired = True
            conn.abort()  # connectionLost then fails the exchange

        timer = self._reactor.callLater(timeout, expire)

        def answered(reply: Reply) -> HTTPResult:
            if timer.active():
                timer.cancel()
            if reply.reusable and not conn.closed:
                self._idle.put(origin, conn)
            else:
                conn.abort()
            return HTTPResult(reply.status, reply.headers, reply.body)

        def failed(failure: Failure) -> Failure:
            if timer.active():
                timer.cancel()
            if failure.check(TimeoutError):
                raise TransportError("timeout", f"no answer within {timeout:.1f}s") from failure.value
            conn.abort()  # cancelled, or failed: the connection's state is unknown
            return failure

        return conn.exchange(request).addCallbacks(answered, failed)
