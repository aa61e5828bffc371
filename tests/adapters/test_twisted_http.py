"""The Twisted publisher's transport (treq over a persistent pool) against real
sockets on 127.0.0.1: what it sends, how it reads every kind of answer, and how
each failure below HTTP maps to a transport kind. Trial tests on the real reactor;
a threaded raw server (``tests.support.raw_http``) answers in every way HTTP
allows, and some it does not."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytest.importorskip("treq")

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from skyhooks.core.delivery import HTTPResult, ITransport
from skyhooks.core.errors import TransportError
from skyhooks.twisted import Publisher
from tests.support.raw_http import RawServer, hanging_server, trusted_and_stranger
from tests.support.receiver import refused_url

HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}
OK = b'{"status":"ok","notified":1}'


def reply(status: str = "200 OK", body: bytes = OK, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


class TreqTransportTests(TestCase):
    timeout = 20

    def setUp(self) -> None:
        # The transport a Publisher makes by default, as it makes it.
        self.transport = Publisher("memory://", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").transport

    async def tearDown(self) -> None:
        await self.transport.close()
        # aborted connections finish closing on the next reactor turns (trial checks)
        await deferLater(reactor, 0.05, lambda: None)

    async def post(self, url: str, timeout: float = 2, headers: Any = HEADERS) -> HTTPResult:
        result = await self.transport.post(url, headers, b"{}", timeout)
        assert isinstance(result, HTTPResult)
        return result

    async def fails(self, kind: str, url: str, timeout: float = 2) -> TransportError:
        try:
            await self.post(url, timeout)
        except TransportError as exc:
            self.assertEqual(exc.kind, kind, exc)
            return exc
        raise AssertionError(f"no TransportError for {url}")

    def test_it_is_a_transport(self) -> None:
        verifyObject(ITransport, self.transport)

    async def test_posts_over_one_kept_alive_connection(self) -> None:
        with RawServer(lambda n, head, body: reply()) as server:
            for i in range(3):
                result = await self.transport.post(server.url, HEADERS, b'{"n":%d}' % i, 2)
                self.assertEqual((result.status, result.body), (200, OK))
            self.assertEqual(server.connections, 1)
            head, body = server.requests[0]
            self.assertTrue(head.startswith(b"POST /hook?x=1 HTTP/1.1\r\n"), head)
            lower = head.lower()
            self.assertIn(b"\r\nhost: 127.0.0.1:", lower)
            self.assertIn(b"\r\nwebhook-id: msg_1", lower)
            self.assertIn(b"\r\ncontent-length: 7", lower)
            self.assertEqual(body, b'{"n":0}')

    async def test_every_status_is_an_answer_with_its_headers(self) -> None:
        answers = {
            1: reply("503 Busy", b"later", "Retry-After: 1\r\n"),
            2: reply("429 Too Many Requests", b"", "Retry-After: 2\r\n"),
            3: reply("404 Not Found", b"gone"),
            4: reply("302 Found", b"", "Location: http://127.0.0.1:1/\r\n"),  # never followed
        }
        with RawServer(lambda n, head, body: answers[n]) as server:
            got = [await self.post(server.url) for _ in answers]
            self.assertEqual(len(server.requests), 4)
        self.assertEqual(
            [(r.status, r.body) for r in got], [(503, b"later"), (429, b""), (404, b"gone"), (302, b"")]
        )
        retry_after = [{k.lower(): v for k, v in r.headers.items()}.get("retry-after") for r in got]
        self.assertEqual(retry_after, ["1", "2", None, None])

    async def test_reads_chunked_empty_and_close_delimited_bodies(self) -> None:
        answers = {
            1: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\n\r\n",
            2: b"HTTP/1.1 204 No Content\r\n\r\n",
            3: b"HTTP/1.1 503 Busy\r\n\r\nto the close",  # ends when the server closes
        }
        with RawServer(lambda n, head, body: answers[n], close_after=3) as server:
            got = [await self.post(server.url) for _ in answers]
        self.assertEqual(
            [(r.status, r.body) for r in got], [(200, b"hello"), (204, b""), (503, b"to the close")]
        )

    async def test_a_connection_closed_while_idle_is_retried_once_on_a_fresh_one(self) -> None:
        with RawServer(lambda n, head, body: None if n == 2 else reply()) as server:  # drops the 2nd
            await self.post(server.url)
            self.assertEqual((await self.post(server.url)).status, 200)
            # the 2nd was sent again, on a new connection (its id lets the receiver drop a duplicate)
            self.assertEqual((server.connections, len(server.requests)), (2, 3))

    async def test_no_answer_even_on_a_fresh_connection_is_an_error(self) -> None:
        with RawServer(lambda n, head, body: None) as server:
            await self.fails("error", server.url)
            self.assertEqual(len(server.requests), 2)  # the one retry, then the error

    async def test_a_reply_cut_short_or_garbled_is_an_error(self) -> None:
        for answer in (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then the server closes
            b"SMTP ready\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ):
            with RawServer(lambda n, head, body, answer=answer: answer, close_after=1) as server:
                await self.fails("error", server.url)

    async def test_a_silent_server_times_out_and_a_closed_port_is_refused(self) -> None:
        sock, port = hanging_server()
        self.addCleanup(sock.close)
        started = time.monotonic()
        exc = await self.fails("timeout", f"http://127.0.0.1:{port}/", timeout=0.3)
        self.assertIn("no answer within 0.3s", str(exc))
        self.assertLess(time.monotonic() - started, 1.5)
        # (Twisted's HostnameEndpoint reports a refusal at its next attempt, 0.3 s on.)
        await self.fails("refused", refused_url(), timeout=2)

    async def test_a_timed_out_request_is_not_sent_again(self) -> None:
        with RawServer(lambda n, head, body: time.sleep(0.6) or reply()) as server:
            await self.fails("timeout", server.url, timeout=0.2)
            await deferLater(reactor, 0.6, lambda: None)  # a retry would have arrived by now
            self.assertEqual(len(server.requests), 1)

    async def test_https_verifies_the_certificate(self) -> None:
        """A certificate the system trusts (here through SSL_CERT_FILE, read when the
        client first connects over TLS) is accepted, over one kept-alive connection;
        one it does not trust is an error, and the request never leaves."""
        with trusted_and_stranger() as (context, stranger):
            with RawServer(lambda n, head, body: reply(), tls=context) as server:
                for _ in range(2):
                    self.assertEqual((await self.post(server.url)).body, OK)
                self.assertEqual((server.connections, len(server.requests)), (1, 2))
            with RawServer(lambda n, head, body: reply(), tls=stranger) as server:
                await self.fails("error", server.url)
                self.assertEqual(server.requests, [])
