"""The blocking publisher's transport (``skyhooks.blocking.Urllib3Transport``) against
real sockets on 127.0.0.1: a raw server that answers whatever bytes a case needs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from zope.interface.verify import verifyObject

from skyhooks.blocking import Urllib3Transport
from skyhooks.core.delivery import ITransport
from skyhooks.core.errors import TransportError
from tests.support.raw_http import RawServer, hanging_server, trusted_and_stranger
from tests.support.receiver import refused_url

HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}
OK = b'{"status":"ok","notified":1}'


def reply(status: str = "200 OK", body: bytes = OK, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


@pytest.fixture
def transport() -> Iterator[Urllib3Transport]:
    transport = Urllib3Transport(4)
    yield transport
    transport.close()


def fails(kind: str, transport: Urllib3Transport, url: str, timeout: float = 2, **headers: str) -> str:
    with pytest.raises(TransportError) as caught:
        transport.post(url, {**HEADERS, **headers}, b"{}", timeout)
    assert caught.value.kind == kind, caught.value
    return str(caught.value)


def test_it_is_a_transport(transport):
    assert verifyObject(ITransport, transport)


def test_posts_over_one_kept_alive_connection(transport):
    with RawServer(lambda n, head, body: reply()) as server:
        for i in range(3):
            result = transport.post(server.url, HEADERS, b'{"n":%d}' % i, 2)
            assert (result.status, result.body) == (200, OK)
        assert server.connections == 1
        head, body = server.requests[0]
        assert head.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
        assert b"\r\nHost: 127.0.0.1:" in head and b"\r\nwebhook-id: msg_1" in head
        assert body == b'{"n":0}'


def test_reads_chunked_no_content_and_interim_replies_on_one_connection(transport):
    answers = {
        1: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\n\r\n",
        2: b"HTTP/1.1 204 No Content\r\n\r\n",
        3: b"HTTP/1.1 100 Continue\r\n\r\n" + reply(),
    }
    with RawServer(lambda n, head, body: answers[n]) as server:
        bodies = [transport.post(server.url, HEADERS, b"{}", 2).body for _ in range(3)]
        assert bodies == [b"hello", b"", OK]
        assert server.connections == 1


@pytest.mark.parametrize(
    "status, extra",
    [
        ("503 Busy", "Retry-After: 1\r\n"),
        ("429 Slow down", "Retry-After: 1\r\n"),
        ("302 Found", "Location: /x\r\n"),
    ],
)
def test_statuses_are_passed_through_not_retried_or_followed(transport, status, extra):
    with RawServer(lambda n, head, body: reply(status, b"busy", extra)) as server:
        result = transport.post(server.url, HEADERS, b"{}", 2)
        assert (result.status, result.body) == (int(status[:3]), b"busy")
        assert result.headers["retry-after" if "Retry" in extra else "location"] in ("1", "/x")
        assert len(server.requests) == 1


def test_replies_that_close_the_connection_leave_it(transport):
    for answer, close in [
        (reply(extra="Connection: close\r\n"), 0),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0),
        (b"HTTP/1.1 503 Busy\r\nRetry-After: 1\r\n\r\nto the close", 1),  # ends when the server closes
        (reply(), 1),  # then the server closes the idle connection
    ]:
        with RawServer(lambda n, head, body, answer=answer: answer if n == 1 else reply(), close) as server:
            first = transport.post(server.url, HEADERS, b"{}", 2)
            if first.status == 503:
                assert (first.headers["retry-after"], first.body) == ("1", b"to the close")
            assert transport.post(server.url, HEADERS, b"{}", 2).status == 200
            assert server.connections == 2 and len(server.requests) == 2, answer


def test_a_kept_alive_connection_closed_as_the_request_arrives_is_resent_once(transport):
    with RawServer(lambda n, head, body: None if n == 2 else reply()) as server:  # drops the 2nd
        transport.post(server.url, HEADERS, b"{}", 2)
        assert transport.post(server.url, HEADERS, b"{}", 2).status == 200
        assert server.connections == 2 and len(server.requests) == 3  # the 2nd was sent again


def test_a_connection_closed_unanswered_every_time_is_an_error(transport):
    with RawServer(lambda n, head, body: None) as server:
        fails("error", transport, server.url)
        assert len(server.requests) == 2  # sent once more, not for ever


@pytest.mark.parametrize(
    "answer",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 2xx OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then the server closes
        reply(body=b"x" * (1024 * 1024 + 1)),
    ],
    ids=["not-http", "bad-status", "huge-header", "bad-chunk", "cut-short", "huge-body"],
)
def test_garbled_or_huge_replies_are_errors(transport, answer):
    with RawServer(lambda n, head, body: answer, close_after=1) as server:
        fails("error", transport, server.url)
        assert len(server.requests) == 1


def test_a_silent_server_is_a_timeout(transport):
    sock, port = hanging_server()
    try:
        started = time.monotonic()
        fails("timeout", transport, f"http://127.0.0.1:{port}/", timeout=0.3)
        assert time.monotonic() - started < 1.5
    finally:
        sock.close()


def test_a_refused_connection_is_refused_and_a_bad_name_an_error(transport):
    fails("refused", transport, refused_url(), timeout=1)
    fails("error", transport, "http://no-such-host.invalid/hook", timeout=1)


def test_a_header_with_a_line_break_is_never_sent(transport):
    with RawServer(lambda n, head, body: reply()) as server:
        fails("error", transport, server.url, **{"webhook-id": "x\r\nX-Evil: 1"})
        assert server.requests == []


def test_many_threads_share_the_pool(transport):
    with RawServer(lambda n, head, body: reply()) as server:
        statuses: list[int] = []

        def post() -> None:
            for _ in range(10):
                statuses.append(transport.post(server.url, HEADERS, b"{}", 5).status)

        threads = [threading.Thread(target=post) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert statuses == [200] * 80 and len(server.requests) == 80
        assert server.connections <= 8


def test_https_verifies_the_certificate(transport):
    """A certificate the system trusts (here through SSL_CERT_FILE) is accepted, over
    one kept-alive connection; one it does not trust is an error, and the request
    never leaves."""
    with trusted_and_stranger() as (context, stranger):
        with RawServer(lambda n, head, body: reply(), tls=context) as server:
            assert server.url.startswith("https://")
            for _ in range(2):
                result = transport.post(server.url, HEADERS, b"{}", 2)
                assert (result.status, result.body) == (200, OK)
            assert server.connections == 1 and len(server.requests) == 2
        with RawServer(lambda n, head, body: reply(), tls=stranger) as server:
            fails("error", transport, server.url)
            assert server.requests == []
