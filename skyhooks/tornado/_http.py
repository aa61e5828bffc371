"""A small HTTP/1.1 keep-alive client on asyncio streams: the Tornado publisher's default.

A publisher only ever POSTs a small signed JSON body and reads a small JSON
reply, over and over, to a few instances. Tornado's ``AsyncHTTPClient`` (curl
or simple) is general, and most of a publisher's CPU went into it: per request
it sets up a request object, timers and, for curl, a dozen callbacks. This
client does only what a webhook POST needs: pooled keep-alive connections per
origin, one write per request, a reply read by ``Content-Length`` or chunks,
one timer per request for the timeout, HTTPS through the default SSL context.
It reads replies up to 1 MiB and 64 KiB of headers; anything bigger is an
error, not a reason to buffer.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Mapping

from ..core.delivery import HTTPResult
from ..core.errors import TransportError
from ..core.urls import Origin, split_target

__all__ = ["Http1Pool"]

MAX_REPLY = 1024 * 1024
MAX_HEAD = 64 * 1024
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
        request = _request(origin, path, headers, body)
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
        reader, writer = await asyncio.open_connection(host, port, ssl=tls, limit=MAX_HEAD)
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
            writer.transport.abort()  # the pending read then fails at once

        timer = asyncio.get_running_loop().call_later(timeout, expire)
        started = False  # any reply byte seen: then a failure is not a stale connection
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            started = True
            status, fields, keep_alive = _parse_head(head)
            while 100 <= status < 200:  # an interim reply (100 Continue): the real one follows
                status, fields, keep_alive = _parse_head(await reader.readuntil(b"\r\n\r\n"))
            body, delimited = await _read_body(reader, status, fields)
        except asyncio.IncompleteReadError as exc:
            writer.transport.abort()
            if expired:
                raise TransportError("timeout", f"no answer within {timeout:.1f}s") from exc
            if not exc.partial and not started:
                raise _Stale() from exc
            raise TransportError("error", "the connection closed in the middle of the reply") from exc
        except (ConnectionResetError, BrokenPipeError) as exc:
            writer.transport.abort()
            if expired:
                raise TransportError("timeout", f"no answer within {timeout:.1f}s") from exc
            if not started:
                raise _Stale() from exc
            raise TransportError("error", str(exc) or type(exc).__name__) from exc
        except (asyncio.LimitOverrunError, ValueError) as exc:  # headers too big, garbled reply
            writer.transport.abort()
            raise TransportError("error", f"unreadable reply: {exc}") from exc
        except OSError as exc:
            writer.transport.abort()
            if expired:
                raise TransportError("timeout", f"no answer within {timeout:.1f}s") from exc
            raise TransportError("error", str(exc) or type(exc).__name__) from exc
        except BaseException:  # cancelled: the connection's state is unknown
            writer.transport.abort()
            raise
        finally:
            timer.cancel()
        if keep_alive and delimited:
            self._checkin(origin, conn)
        else:
            writer.transport.abort()
        return HTTPResult(status, fields, body)

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


def _request(origin: Origin, path: str, headers: Mapping[str, str], body: bytes) -> bytes:
    scheme, host, port = origin
    default = 443 if scheme == "https" else 80
    authority = host if port == default else f"{host}:{port}"
    if ":" in host:  # an IPv6 literal
        authority = f"[{host}]" if port == default else f"[{host}]:{port}"
    fields = {name: value for name, value in headers.items() if name.lower() != "content-length"}
    given = path + "".join(fields) + "".join(fields.values())
    if "\r" in given or "\n" in given:
        raise TransportError("error", "a header or the path holds a line break")  # never split a header
    lines = [f"POST {path} HTTP/1.1", f"Host: {authority}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in fields.items()]
    try:
        head = "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise TransportError("error", f"a header or the path is not latin-1: {exc}") from exc
    return head + b"\r\n\r\n" + body


def _parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    """(status, headers with lower-case names, whether the server keeps the connection)."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(rest[:3])
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"not a header line: {line[:80]!r}")
            name = name.strip().lower()
            value = value.strip()
            fields[name] = f"{fields[name]}, {value}" if name in fields else value
    connection = fields.get("connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return status, fields, keep_alive


async def _read_body(
    reader: asyncio.StreamReader, status: int, fields: Mapping[str, str]
) -> tuple[bytes, bool]:
    """The reply body, and whether its end was delimited (else the server closes)."""
    if status in (204, 304):  # never a body
        return b"", True
    if "chunked" in fields.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        size = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            length = int(line.split(b";", 1)[0].strip(), 16)
            if length == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                    pass
                return b"".join(parts), True
            size += length
            if size > MAX_REPLY:
                raise ValueError(f"reply over {MAX_REPLY} bytes")
            parts.append((await reader.readexactly(length + 2))[:-2])
    if "content-length" in fields:
        length = int(fields["content-length"])
        if not 0 <= length <= MAX_REPLY:
            raise ValueError(f"reply of {length} bytes (at most {MAX_REPLY} are read)")
        return await reader.readexactly(length), True
    body = await reader.read(MAX_REPLY + 1)  # delimited by the connection's close
    rest = body
    while rest and len(body) <= MAX_REPLY:
        rest = await reader.read(MAX_REPLY + 1 - len(body))
        body += rest
    if len(body) > MAX_REPLY:
        raise ValueError(f"reply over {MAX_REPLY} bytes")
    return body, False
