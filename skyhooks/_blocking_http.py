"""A small HTTP/1.1 keep-alive client on blocking sockets: the blocking publisher's.

The protocol is :mod:`skyhooks.core.http1` (sans-IO, shared with the Tornado
and Twisted publishers' clients); this adds a pool of idle connections per
origin shared by the calling threads, one ``sendall`` per request, and a
deadline per request (connect, send and every read count against it). Against
``http.client`` it saves the second write per request (headers and body went
in two segments) and the ``email`` parser that read every reply's headers:
about a third of the blocking publisher's CPU per message here. Under gevent's
monkey-patching the sockets are cooperative, so the gevent publisher sends with
it too.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any

from .core.delivery import HTTPResult
from .core.errors import TransportError
from .core.http1 import IdleConnections, ReplyParser, Stale, request_bytes
from .core.urls import Origin, split_target

__all__ = ["BlockingHttp1Pool"]


class BlockingHttp1Pool:
    """POSTs over pooled keep-alive sockets, at most *per_origin* idle per instance. Thread-safe."""

    def __init__(self, per_origin: int, *, sockets: Any = socket, tls: Any = ssl) -> None:
        """*sockets* and *tls* are the ``socket`` and ``ssl`` modules to use:
        the gevent publisher passes gevent's, cooperative even unpatched."""
        self._sockets, self._tls_module = sockets, tls
        self._idle: IdleConnections[socket.socket] = IdleConnections(per_origin, _close)
        self._tls: ssl.SSLContext | None = None

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> HTTPResult:
        """POST *body*; an :class:`HTTPResult` whatever the status, or :class:`TransportError`."""
        origin, path = split_target(url)
        request = request_bytes(origin, path, headers, body)
        deadline = time.monotonic() + timeout
        while (sock := self._idle.take(origin)) is not None:  # a stale one: the next
            try:
                return self._exchange(origin, sock, request, deadline, timeout)
            except Stale:
                continue
        fresh = self._connect(origin, timeout)
        try:
            return self._exchange(origin, fresh, request, deadline, timeout)
        except Stale as exc:
            raise TransportError("error", "the connection closed before any reply") from exc

    def close(self) -> None:
        self._idle.close()

    def _connect(self, origin: Origin, timeout: float) -> socket.socket:
        scheme, host, port = origin
        try:
            sock: socket.socket = self._sockets.create_connection((host, port), timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                if self._tls is None:
                    self._tls = self._tls_module.create_default_context()
                sock = self._tls.wrap_socket(sock, server_hostname=host)
        except ConnectionRefusedError as exc:
            raise TransportError("refused", str(exc)) from exc
        except TimeoutError as exc:  # socket.timeout
            raise TransportError("timeout", f"no connection within {timeout:.1f}s") from exc
        except OSError as exc:  # DNS failure, unreachable, TLS handshake...
            raise TransportError("error", str(exc) or type(exc).__name__) from exc
        return sock

    def _exchange(
        self, origin: Origin, sock: socket.socket, request: bytes, deadline: float, timeout: float
    ) -> HTTPResult:
        parser = ReplyParser()
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(request)
            while parser.reply is None:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))  # a deadline, not per read
                data = sock.recv(65536)
                if data:
                    parser.feed(data)
                elif not parser.started:
                    raise Stale
                else:
                    parser.eof()
        except Stale:
            sock.close()
            raise
        except TimeoutError as exc:  # before OSError: socket.timeout is one
            sock.close()
            raise TransportError("timeout", f"no answer within {timeout:.1f}s") from exc
        except ValueError as exc:  # garbled, too big or cut short
            sock.close()
            raise TransportError("error", f"unusable reply: {exc}") from exc
        except OSError as exc:  # reset, broken pipe
            sock.close()
            if not parser.started and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                raise Stale from exc
            raise TransportError("error", str(exc) or type(exc).__name__) from exc
        except BaseException:  # interrupted (gevent.Timeout, KeyboardInterrupt): state unknown
            sock.close()
            raise
        reply = parser.reply
        if reply.reusable:
            self._idle.put(origin, sock)
        else:
            sock.close()
        return HTTPResult(reply.status, reply.headers, reply.body)


def _close(sock: socket.socket) -> None:
    sock.close()  # (a gevent socket is not a socket.socket: no unbound method)
