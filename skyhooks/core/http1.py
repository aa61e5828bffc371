"""Sans-IO HTTP/1.1 for publishers: the request bytes of a webhook POST and a reply parser.

A publisher POSTs a small signed JSON body and reads a small JSON reply, over
and over, to a few instances. General HTTP clients cost most of a publisher's
CPU per message (request objects, timers, callbacks); the asyncio (Tornado) and
Twisted publishers therefore send with a small keep-alive client each, built
on this module, so the protocol is written and tested once. Like the rest of
the core it does no I/O: bytes in, bytes or a :class:`Reply` out.

Replies are read by ``Content-Length``, by chunks, or to the connection's
close; interim 1xx replies are skipped. Heads over 64 KiB and bodies over
1 MiB are refused with ``ValueError`` rather than buffered: a skyhooks reply
is a few dozen bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import TransportError
from .forks import reset_in_child
from .urls import Origin

__all__ = [
    "MAX_HEAD",
    "MAX_HOSTS",
    "MAX_REPLY",
    "IdleConnections",
    "Reply",
    "ReplyParser",
    "Stale",
    "request_bytes",
]

MAX_HEAD = 64 * 1024
MAX_REPLY = 1024 * 1024
#: Instances with idle connections kept; beyond this the least recently used are closed.
MAX_HOSTS = 256

C = TypeVar("C")


class Stale(Exception):
    """A kept-alive connection turned out closed before any reply byte came back:
    the request may go again on a fresh one (receivers drop duplicate webhook-ids)."""


class IdleConnections(Generic[C]):
    """The clients' kept-alive connections: at most *per_origin* idle per origin,
    and the least recently used origins' closed beyond :data:`MAX_HOSTS`.
    Thread-safe; *close* is how a surplus connection is closed (outside the lock).

    A forked child never uses its parent's connections: the two processes would
    write requests into one connection and read each other's replies. It closes
    its copies instead, at its first use of the pool (closing a copy leaves the
    parent's connection open).
    """

    def __init__(self, per_origin: int, close: Callable[[C], None]) -> None:
        self.per_origin = per_origin
        self._close = close
        self._idle: dict[Origin, list[C]] = {}  # least to most recently used
        self._lock = threading.Lock()
        self._inherited: list[C] = []  # a forked child's copies of its parent's, to close
        reset_in_child(self)

    def _after_fork(self) -> None:
        # Closed later, not here: this runs inside fork(), where a cooperative
        # (gevent) socket cannot be closed yet.
        self._lock = threading.Lock()
        self._inherited = [conn for conns in self._idle.values() for conn in conns]
        self._idle = {}

    def take(self, origin: Origin) -> C | None:
        """An idle connection to *origin* (the last one put back), or None."""
        if self._inherited:
            self._close_inherited()
        with self._lock:
            idle = self._idle.get(origin)
            return idle.pop() if idle else None

    def _close_inherited(self) -> None:
        with self._lock:
            inherited, self._inherited = self._inherited, []
        for conn in inherited:
            self._close(conn)

    def put(self, origin: Origin, conn: C) -> None:
        """Keep *conn* for the next request to *origin*."""
        surplus = []
        with self._lock:
            idle = self._idle.pop(origin, [])
            self._idle[origin] = idle  # re-inserted last: most recently used
            if len(idle) < self.per_origin:
                idle.append(conn)
            else:
                surplus.append(conn)
            while len(self._idle) > MAX_HOSTS:
                surplus.extend(self._idle.pop(next(iter(self._idle))))
        for old in surplus:
            self._close(old)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
            inherited, self._inherited = self._inherited, []
        for conn in [*inherited, *(conn for conns in idle.values() for conn in conns)]:
            self._close(conn)


def request_bytes(origin: Origin, path: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """The whole request, to be written at once (one segment for a small POST).

    Raises :class:`TransportError` for a line break in a header or the path
    (never split a header) or a character latin-1 cannot carry.
    """
    scheme, host, port = origin
    default = 443 if scheme == "https" else 80
    name = f"[{host}]" if ":" in host else host  # an IPv6 literal
    authority = name if port == default else f"{name}:{port}"
    fields = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "host")}
    given = path + "".join(fields) + "".join(fields.values())
    if "\r" in given or "\n" in given:
        raise TransportError("error", "a header or the path holds a line break")
    lines = [f"POST {path} HTTP/1.1", f"Host: {authority}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in fields.items()]
    try:
        head = "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise TransportError("error", f"a header or the path is not latin-1: {exc}") from exc
    return head + b"\r\n\r\n" + body


@dataclass(frozen=True)
class Reply:
    status: int
    #: names in lower case; repeated headers joined with ", "
    headers: Mapping[str, str]
    body: bytes
    #: the connection may carry another request (HTTP/1.1 without "close", body delimited)
    reusable: bool


class ReplyParser:
    """Feed it what the connection reads; :attr:`reply` is set once one is complete.

    ``feed`` and ``eof`` raise ``ValueError`` for a reply that is not HTTP/1.x,
    too big, or cut short. ``started`` tells whether any byte came back: a
    kept-alive connection that closes before that was stale, and the request
    may be sent again on a fresh one.
    """

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self.started = False
        self._buffer = bytearray()
        self._state = "head"  # head, length, chunk-size, chunk-data, trailers, close, done
        self._status = 0
        self._headers: dict[str, str] = {}
        self._keep = False
        self._body = bytearray()
        self._needed = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.started = True
        if self._state == "done":
            raise ValueError("bytes after the reply")  # nothing was asked for them
        self._buffer += data
        self._advance()

    def eof(self) -> None:
        """The peer closed: completes a close-delimited body, else the reply was cut short."""
        if self._state == "close":
            self._body += self._buffer
            self._buffer.clear()
            self._finish(reusable=False)
        elif self._state != "done":
            raise ValueError("the connection closed in the middle of the reply")

    def _advance(self) -> None:
        while True:
            state = self._state
            if state == "head":
                end = self._buffer.find(b"\r\n\r\n")
                if end > MAX_HEAD or (end < 0 and len(self._buffer) > MAX_HEAD):
                    raise ValueError(f"reply head over {MAX_HEAD} bytes")
                if end < 0:
                    return
                head = bytes(self._buffer[:end])
                del self._buffer[: end + 4]
                self._head(head)
            elif state == "length":
                if len(self._buffer) < self._needed:
                    return
                self._body += self._buffer[: self._needed]
                del self._buffer[: self._needed]
                self._finish(reusable=self._keep)
            elif state in ("chunk-size", "trailers"):
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEAD:
                        raise ValueError("chunk header line too long")
                    return
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                if state == "trailers":
                    if not line:
                        self._finish(reusable=self._keep)
                    continue
                size = int(line.split(b";", 1)[0].strip(), 16)  # ValueError if not hex
                if size < 0 or len(self._body) + size > MAX_REPLY:
                    raise ValueError(f"reply over {MAX_REPLY} bytes")
                self._state, self._needed = ("chunk-data", size + 2) if size else ("trailers", 0)
            elif state == "chunk-data":
                if len(self._buffer) < self._needed:
                    return
                if self._buffer[self._needed - 2 : self._needed] != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
                self._body += self._buffer[: self._needed - 2]
                del self._buffer[: self._needed]
                self._state = "chunk-size"
            elif state == "close":
                if len(self._body) + len(self._buffer) > MAX_REPLY:
                    raise ValueError(f"reply over {MAX_REPLY} bytes")
                return
            else:  # done
                if self._buffer:
                    raise ValueError("bytes after the reply")
                return

    def _head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"not a header line: {line[:80]!r}")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if 100 <= status < 200:
            return  # an interim reply (100 Continue): the real one follows; stay in "head"
        connection = headers.get("connection", "").lower()
        self._status, self._headers = status, headers
        self._keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        if status in (204, 304):
            self._finish(reusable=self._keep)
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = "chunk-size"
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit() or int(length) > MAX_REPLY:
                raise ValueError(f"unusable content-length {length[:40]!r} (at most {MAX_REPLY} bytes read)")
            self._state, self._needed = "length", int(length)
        else:
            self._state = "close"  # delimited by the connection's close

    def _finish(self, reusable: bool) -> None:
        self._state = "done"
        self.reply = Reply(self._status, self._headers, bytes(self._body), reusable)
