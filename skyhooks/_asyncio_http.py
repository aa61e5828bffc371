"""A small HTTP/1.1 keep-alive client on asyncio streams: the asyncio publishers'
(Tornado's default, and the blocking publisher's :meth:`~skyhooks.Publisher.submit`).

The protocol is :mod:`skyhooks.core.http1` (sans-IO, shared with the Twisted
publisher's client); this adds pooled connections per origin, one write per
request, one timer per request for the timeout, and HTTPS through the default
SSL context. See that module for why publishers do not use a general client.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Mapping

from .core.delivery import HTTPResult
from .core.errors import TransportError
from .core.http1 import IdleConnections, ReplyParser, Stale, request_bytes
from .core.urls import Origin, split_target

__all__ = ["Http1Pool"]

# With the loop it was opened on: a transport belongs to one loop, and a
# publisher may outlive its loop (asyncio.run twice, a test's loop per test)
# or be shared by loops in several threads.
_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.AbstractEventLoop]


class Http1Pool:
    """POSTs over pooled keep-alive connections, at most *per_origin* idle per instance."""

    def __init__(self, per_origin: int) -> None:
        self._idle: IdleConnections[_Connection] = IdleConnections(per_origin, _abort)
        self._tls: ssl.SSLContext | None = None

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> HTTPResult:
        """POST *body*; an :class:`HTTPResult` whatever the status, or :class:`TransportError`."""
        origin, path = split_target(url)
        request = request_bytes(origin, path, headers, body)
        loop = asyncio.get_running_loop()
        while (conn := self._idle.take(origin)) is not None:  # a stale one: the next
            if conn[2] is not loop:  # another loop's: unusable here
                _abort(conn)
                continue
            try:
                return await self._exchange(origin, conn, request, timeout)
            except Stale:
                continue
        try:
            conn = await asyncio.wait_for(self._connect(origin), timeout)
        except ConnectionRefusedError as exc:
            raise TransportError("refused", str(exc)) from exc
        except asyncio.TimeoutError as exc:  # (TimeoutError itself from 3.11)
            raise TransportError("timeout", f"no connection within {timeout:.1f}s") from exc
        except OSError as exc:  # DNS failure, unreachable, TLS handshake...
            raise TransportError("error", str(exc) or type(exc).__name__) from exc
        try:
            return await self._exchange(origin, conn, request, timeout)
        except Stale as exc:
            raise TransportError("error", "the connection closed before any reply") from exc

    def close(self) -> None:
        self._idle.close()

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            tls = self._tls = self._tls or ssl.create_default_context()
        reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer, asyncio.get_running_loop()

    async def _exchange(
        self, origin: Origin, conn: _Connection, request: bytes, timeout: float
    ) -> HTTPResult:
        reader, writer, _ = conn
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            writer.transport.abort()  # the pending read then ends at once

        timer = asyncio.get_running_loop().call_later(timeout, expire)
        parser = ReplyParser()
        try:
            writer.write(request)
            while parser.reply is None:
                data = await reader.read(65536)
                if data:
                    parser.feed(data)
                elif expired:
                    raise TimeoutError
                elif not parser.started:
                    raise Stale
                else:
                    parser.eof()
        except Stale:
            writer.transport.abort()
            raise
        except ValueError as exc:  # garbled, too big or cut short
            writer.transport.abort()
            raise TransportError("error", f"unusable reply: {exc}") from exc
        except OSError as exc:  # reset, broken pipe; TimeoutError from our timer
            writer.transport.abort()
            if expired:
                raise TransportError("timeout", f"no answer within {timeout:.1f}s") from exc
            if not parser.started:
                raise Stale from exc
            raise TransportError("error", str(exc) or type(exc).__name__) from exc
        except BaseException:  # cancelled: the connection's state is unknown
            writer.transport.abort()
            raise
        finally:
            timer.cancel()
        reply = parser.reply
        if reply.reusable:
            self._idle.put(origin, conn)
        else:
            writer.transport.abort()
        return HTTPResult(reply.status, reply.headers, reply.body)


def _abort(conn: _Connection) -> None:
    """Close *conn* from wherever the pool lets it go (its loop's thread, another
    loop's, or none: ``close()`` after the loop has ended)."""
    _, writer, loop = conn
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running:
        writer.transport.abort()
    elif not loop.is_closed():  # its own loop closes it, in its own thread
        loop.call_soon_threadsafe(writer.transport.abort)
    else:
        # Its loop has been closed (asyncio.run returned) and can run nothing.
        # Shut the connection down now, so the receiver sees it end; the
        # descriptor is closed when the transport is collected (asyncio's
        # finaliser, with a ResourceWarning, hidden by default).
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
