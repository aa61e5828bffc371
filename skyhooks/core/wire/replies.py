"""Replies: what an instance answers (:class:`Response`), and how a publisher reads it (:class:`Reply`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType
from typing import Any

from ..errors import RequestError

__all__ = ["Reply", "Response", "batch_response", "error_response", "ok_response", "parse_reply"]

# Read-only, so the answers every usual request gets can be built once and shared.
_JSON_HEADERS: Mapping[str, str] = MappingProxyType({"Content-Type": "application/json"})


@dataclass(frozen=True)
class Response:
    """An answer for the adapter to write: status, JSON body, headers (``Content-Length`` aside)."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: _JSON_HEADERS)
    #: The adapter must close the connection after answering: the request's body
    #: was left unread, and its bytes would be taken for the next request.
    close: bool = False

    @functools.cached_property
    def header_pairs(self) -> tuple[tuple[str, str], ...]:
        """The headers with ``Content-Length`` (and ``Connection: close`` when
        :attr:`close`), as ``(name, value)`` pairs: WSGI's and ASGI's shape.
        Made once per response (the usual answers are shared ones); copy it
        into a list where a server wants to add to it."""
        pairs = (*self.headers.items(), ("Content-Length", str(len(self.body))))
        return (*pairs, ("Connection", "close")) if self.close else pairs

    @functools.cached_property
    def raw_header_pairs(self) -> tuple[tuple[bytes, bytes], ...]:
        """:attr:`header_pairs` as Latin-1 bytes with lower-case names: ASGI's shape."""
        pairs = self.header_pairs
        return tuple((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs)

    @functools.cached_property
    def status_line(self) -> str:
        """``"413 Payload Too Large"``: the status as WSGI's ``start_response`` takes it."""
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    def http11(self) -> bytes:
        """The whole answer as HTTP/1.1 bytes, for an adapter that must write it to
        the connection itself (before its framework has read the request's body)."""
        head = [f"HTTP/1.1 {self.status_line}", *(f"{name}: {value}" for name, value in self.header_pairs)]
        return "\r\n".join([*head, "", ""]).encode("latin-1") + self.body


def ok_response(notified: int, *, duplicate: bool = False) -> Response:
    """``200 {"status":"ok","notified":N}`` (``"duplicate":true`` for a message seen before)."""
    if duplicate:
        return Response(200, b'{"status":"ok","notified":%d,"duplicate":true}' % notified)
    if 0 <= notified < len(_OK):
        return _OK[notified]
    return Response(200, b'{"status":"ok","notified":%d}' % notified)


# Every usual request gets one of these: made once, shared (a Response is frozen).
_OK = [Response(200, b'{"status":"ok","notified":%d}' % n) for n in range(16)]


def error_response(error: RequestError, *, close: bool = False) -> Response:
    """The JSON answer for a refused request: ``{"status": "error", "error": reason}``."""
    headers = {"Content-Type": "application/json"}
    if error.status == 405:
        headers["Allow"] = "POST"
    body = json.dumps({"status": "error", "error": error.reason}).encode()
    return Response(error.status, body, headers, close=close)


def internal_error_response() -> Response:
    """What an adapter answers when skyhooks itself failed (a bug): JSON, never a traceback."""
    return Response(500, b'{"status":"error","error":"internal error"}')


def batch_response(results: Sequence[int | None]) -> Response:
    """The answer to a batch: the total, and per message its count or ``null``
    for a duplicate: ``{"status":"ok","notified":4,"results":[3,1,null]}``."""
    total = sum(n for n in results if n is not None)
    items = ",".join("null" if n is None else str(n) for n in results)
    return Response(200, b'{"status":"ok","notified":%d,"results":[%s]}' % (total, items.encode()))


@dataclass(frozen=True)
class Reply:
    """What an instance answered, as the publisher reads it. For a batch,
    ``results`` has one entry per message: its count, or None for a duplicate."""

    notified: int
    duplicate: bool
    results: tuple[int | None, ...] | None = None


def parse_reply(body: bytes) -> Reply:
    """Read an instance's 2xx answer. A receiver that is not skyhooks (any
    Standard Webhooks endpoint) may answer anything: count it as one delivery
    with an unknown number of callbacks, never as zero (which would prune it)."""
    known = _KNOWN.get(body)
    if known is not None:  # what skyhooks receivers answer a single message, byte for byte
        return known
    try:
        payload = json.loads(body)
        notified = payload["notified"]
        if not _is_count(notified):
            raise ValueError(notified)
        results = payload.get("results")
        if results is not None:
            if not isinstance(results, list) or not all(n is None or _is_count(n) for n in results):
                raise ValueError(results)
            results = tuple(results)
        return Reply(notified, bool(payload.get("duplicate", False)), results)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return Reply(1, False)


# A reply is read per POST; the usual ones are these exact bytes (ok_response's).
_KNOWN = {response.body: Reply(n, False) for n, response in enumerate(_OK)}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
