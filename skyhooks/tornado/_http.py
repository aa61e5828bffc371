"""A small HTTP/1.1 keep-alive client on asyncio streams: the Tornado publisher's default.

The protocol is :mod:`skyhooks.core.http1` (sans-IO, shared with the Twisted
publisher's client); this adds pooled connections per origin, one write per
request, one timer per request for the timeout, and HTTPS through the default
SSL context. See that module for why publishers do not use a general client.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Mapping

from ..core.delivery import HTTPResult
from ..core.errors import TransportError
from ..core.http1 import ReplyParser, request_bytes
from ..core.urls import Origin, split_target

__all__ = ["Http1Pool"]

#: Instances with idle connections kept; beyond this the least recently used are closed.
MAX_HOSTS = 256

_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Stale(Exception):
    """A pooled connection turned out closed before any reply byte came back."""


class Http1Pool:
    """POSTs over pooled keep-alive connections, at most *per_origin* idle per instance."""

    def __init__(self, per_origin: int) -> None:
        self.per_origin = per_origin
        self._idle: dict[Origin, list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> HTTPResult:
        """POST *body*; an :class:`HTTPResult` whatever the status, or :class:`TransportError`."""
        origin, path = split_target(url)
        request = request_bytes(origin, path, headers, body)
        idle = self._idle.get(origin)
        while idle:  # a pooled connection; a stale one is dropped and the next tried
            conn = idle.pop()
            try:
                return await self._exchange(origin, conn, request, timeout)
            except _Stale:
                continue  # safe to send again: receivers drop duplicate webhook-ids
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
        except _Stale as exc:
            raise TransportError("error", "the connection closed before any reply") from exc

    def close(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for _, writer in conns:
                writer.transport.abort()

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            tls = self._tls = self._tls or ssl.create_default_context()
        reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def _exchange(
        self, origin: Origin, conn: _Connection, request: bytes, timeout: float
    ) -> HTTPResult:
        reader, writer = conn
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
                    raise _Stale
                else:
                    parser.eof()
        except _Stale:
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
                raise _Stale from exc
            raise TransportError("error", str(exc) or type(exc).__name__) from exc
        except BaseException:  # cancelled: the connection's state is unknown
            writer.transport.abort()
            raise
        finally:
            timer.cancel()
        reply = parser.reply
        if reply.reusable:
            self._checkin(origin, conn)
        else:
            writer.transport.abort()
        return HTTPResult(reply.status, reply.headers, reply.body)
    def _checkin(self, origin: Origin, conn: _Connection) -> None:
        idle = self._idle.pop(origin, [])
        self._idle[origin] = idle  # re-inserted last: the dict runs from least to most recently used
        if len(idle) < self.per_origin:
            idle.append(conn)
        else:
            conn[1].transport.abort()
        while len(self._idle) > MAX_HOSTS:
            for _, writer in self._idle.pop(next(iter(self._idle))):
                writer.transport.abort()
