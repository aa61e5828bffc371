"""The publishers' sans-IO HTTP/1.1 (skyhooks.core.http1): request bytes and the reply
parser, fed whole, byte by byte and in random pieces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyhooks.core.errors import TransportError
from skyhooks.core.http1 import MAX_HEAD, MAX_REPLY, ReplyParser, request_bytes

OK = b'{"status":"ok","notified":1}'
REPLIES = [
    # (bytes, status, body, reusable, needs eof)
    (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(OK) + OK, 200, OK, True, False),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: 1\r\n\r\n",
        200,
        b"hello!",
        True,
        False,
    ),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, b"", True, False),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", False, False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", False, False),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", True, False),
    (b"HTTP/1.1 503 Busy\r\nRetry-After: 1\r\n\r\nto the close", 503, b"to the close", False, True),
]


def parse(data: bytes, pieces: list[int], eof: bool) -> ReplyParser:
    parser = ReplyParser()
    at = 0
    for size in pieces:
        parser.feed(data[at : at + size])
        at += size
    parser.feed(data[at:])
    if eof:
        parser.eof()
    return parser


@pytest.mark.parametrize("data, status, body, reusable, eof", REPLIES)
@given(pieces=st.lists(st.integers(min_value=0, max_value=40), max_size=12))
def test_replies_parse_the_same_however_they_are_cut(data, status, body, reusable, eof, pieces) -> None:
    parser = parse(data, pieces, eof)
    assert parser.reply is not None and parser.started
    assert (parser.reply.status, parser.reply.body, parser.reply.reusable) == (status, body, reusable)


def test_byte_by_byte_and_headers() -> None:
    data = b"HTTP/1.1 429 Slow\r\nRetry-After: 3\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n"
    parser = parse(data, [1] * len(data), False)
    assert parser.reply is not None
    assert parser.reply.headers == {"retry-after": "3", "x-a": "1, 2", "content-length": "0"}


@pytest.mark.parametrize(
    "data",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 2xx OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_REPLY + 1),
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * MAX_HEAD + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_REPLY + 1),
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nextra",
    ],
)
def test_garbage_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        ReplyParser().feed(data)


def test_cut_short_and_unframed_limits() -> None:
    parser = ReplyParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    with pytest.raises(ValueError, match="middle"):
        parser.eof()
    parser = ReplyParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(ValueError, match="over"):
        parser.feed(b"x" * (MAX_REPLY + 1))
    assert not ReplyParser().started


def test_request_bytes() -> None:
    request = request_bytes(("http", "127.0.0.1", 8000), "/hook?a=1", {"webhook-id": "msg_1"}, b"{}")
    assert request == (
        b"POST /hook?a=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Length: 2\r\nwebhook-id: msg_1\r\n\r\n{}"
    )
    assert b"Host: [::1]\r\n" in request_bytes(("https", "::1", 443), "/", {}, b"")
    for bad in ({"x": "a\r\nEvil: 1"}, {"x\n": "a"}, {"x": "\u2603"}):
        with pytest.raises(TransportError):
            request_bytes(("http", "h", 80), "/", bad, b"")
    with pytest.raises(TransportError):
        request_bytes(("http", "h", 80), "/a\r\nb", {}, b"")


def test_idle_connections_keep_a_few_per_origin_and_the_recent_origins() -> None:
    from skyhooks.core.http1 import MAX_HOSTS, IdleConnections

    closed: list[str] = []
    idle: IdleConnections[str] = IdleConnections(2, closed.append)
    a = ("http", "a", 80)
    for conn in ("a1", "a2", "a3"):
        idle.put(a, conn)
    assert closed == ["a3"]  # over per_origin
    assert [idle.take(a), idle.take(a), idle.take(a)] == ["a2", "a1", None]  # last in, first out
    idle.put(a, "a4")
    for i in range(MAX_HOSTS):
        idle.put(("http", f"h{i}", 80), f"h{i}")
    assert closed == ["a3", "a4"]  # the least recently used origin went
    idle.close()
    assert len(closed) == 2 + MAX_HOSTS
