"""What the publishers' own HTTP/1.1 clients (Tornado's on asyncio, Twisted's on
protocols) must do, written once as coroutines over ``pool.post``; the two test
modules run every case on their framework. A threaded raw server answers in every
way HTTP allows, and some it does not."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from skyhooks.core.errors import TransportError
from skyhooks.core.http1 import MAX_REPLY
from tests.support.raw_http import RawServer, hanging_server, self_signed
from tests.support.receiver import refused_url

HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}
OK = b'{"status":"ok","notified":1}'


def reply(status: str = "200 OK", body: bytes = OK, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def raises(kinds: tuple[str, ...], awaitable: Any) -> TransportError:
    try:
        await awaitable
    except TransportError as exc:
        assert exc.kind in kinds, exc
        return exc
    raise AssertionError("no TransportError")


async def posts_and_reuses_one_connection(pool: Any) -> None:
    with RawServer(lambda n, head, body: reply()) as server:
        for i in range(3):
            result = await pool.post(server.url, HEADERS, b'{"n":%d}' % i, 2)
            assert (result.status, result.body) == (200, OK)
        assert server.connections == 1
        head, body = server.requests[0]
        assert head.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
        assert b"\r\nHost: 127.0.0.1:" in head and b"\r\nwebhook-id: msg_1" in head
        assert body == b'{"n":0}'


async def reads_chunked_no_content_and_interim_replies_on_one_connection(pool: Any) -> None:
    answers = {
        1: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\n\r\n",
        2: b"HTTP/1.1 204 No Content\r\n\r\n",
        3: b"HTTP/1.1 100 Continue\r\n\r\n" + reply(),
    }
    with RawServer(lambda n, head, body: answers[n]) as server:
        bodies = [(await pool.post(server.url, HEADERS, b"{}", 2)).body for _ in range(3)]
        assert bodies == [b"hello", b"", OK]
        assert server.connections == 1


async def closing_replies_leave_the_connection(pool: Any) -> None:
    for answer, close in [
        (reply(extra="Connection: close\r\n"), 0),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0),
        (b"HTTP/1.1 503 Busy\r\nRetry-After: 1\r\n\r\nto the close", 1),  # ends when the server closes
    ]:
        with RawServer(lambda n, head, body, answer=answer: answer if n == 1 else reply(), close) as server:
            first = await pool.post(server.url, HEADERS, b"{}", 2)
            if close:
                assert (first.status, first.headers["retry-after"], first.body) == (503, "1", b"to the close")
            assert (await pool.post(server.url, HEADERS, b"{}", 2)).status == 200
            assert server.connections == 2, answer


async def a_connection_closed_while_idle_is_retried_on_a_fresh_one(pool: Any) -> None:
    with RawServer(lambda n, head, body: None if n == 2 else reply()) as server:  # drops the 2nd
        await pool.post(server.url, HEADERS, b"{}", 2)
        assert (await pool.post(server.url, HEADERS, b"{}", 2)).status == 200
        assert server.connections == 2 and len(server.requests) == 3  # the 2nd was sent again


async def a_fresh_connection_closed_unanswered_is_an_error(pool: Any) -> None:
    with RawServer(lambda n, head, body: None) as server:
        await raises(("error",), pool.post(server.url, HEADERS, b"{}", 2))


GARBAGE = [
    b"SMTP ready\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
    f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_REPLY + 1}\r\n\r\n".encode(),
    b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then the server closes
]


async def garbled_replies_are_errors(pool: Any) -> None:
    for answer in GARBAGE:
        with RawServer(lambda n, head, body, answer=answer: answer, close_after=1) as server:
            await raises(("error",), pool.post(server.url, HEADERS, b"{}", 2))


async def timeouts_refusals_and_header_injection(pool: Any) -> None:
    sock, port = hanging_server()
    started = time.monotonic()
    await raises(("timeout",), pool.post(f"http://127.0.0.1:{port}/", HEADERS, b"{}", 0.3))
    assert time.monotonic() - started < 1.5
    sock.close()
    await raises(("refused",), pool.post(refused_url(), HEADERS, b"{}", 1))
    with RawServer(lambda n, head, body: reply()) as server:
        exc = await raises(("error",), pool.post(server.url, {"webhook-id": "x\r\nX-Evil: 1"}, b"{}", 1))
        assert "line break" in str(exc) and server.requests == []


async def https_verifies_the_certificate(pool: Any) -> None:
    """A certificate the system trusts (here through SSL_CERT_FILE, read when the
    client first connects over TLS) is accepted, over one kept-alive connection; one
    it does not trust is an error, and the request never leaves."""
    with tempfile.TemporaryDirectory() as trusted, tempfile.TemporaryDirectory() as other:
        context, cert = self_signed(Path(trusted))
        stranger, _ = self_signed(Path(other))
        saved = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = str(cert)
        try:
            with RawServer(lambda n, head, body: reply(), tls=context) as server:
                assert server.url.startswith("https://")
                for _ in range(2):
                    result = await pool.post(server.url, HEADERS, b"{}", 2)
                    assert (result.status, result.body) == (200, OK)
                assert server.connections == 1 and len(server.requests) == 2
            with RawServer(lambda n, head, body: reply(), tls=stranger) as server:
                exc = await raises(("error",), pool.post(server.url, HEADERS, b"{}", 2))
                assert server.requests == [], exc
        finally:
            if saved is None:
                del os.environ["SSL_CERT_FILE"]
            else:
                os.environ["SSL_CERT_FILE"] = saved


CASES = [
    posts_and_reuses_one_connection,
    reads_chunked_no_content_and_interim_replies_on_one_connection,
    closing_replies_leave_the_connection,
    a_connection_closed_while_idle_is_retried_on_a_fresh_one,
    a_fresh_connection_closed_unanswered_is_an_error,
    garbled_replies_are_errors,
    timeouts_refusals_and_header_injection,
    https_verifies_the_certificate,
]
