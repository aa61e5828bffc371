"""The Tornado publisher's own HTTP/1.1 client (skyhooks/tornado/_http.py) against
raw asyncio servers that answer in every way HTTP allows, and some it does not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("tornado")

from skyhooks.core.errors import TransportError
from skyhooks.core.http1 import MAX_REPLY
from skyhooks.tornado._http import Http1Pool

HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}
OK = b'{"status":"ok","notified":1}'


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(test(), 20))


class Server:
    """Answers each request with ``reply(request_number, head, body)`` bytes (None: close)."""

    def __init__(self, reply: Callable[[int, bytes, bytes], bytes | None], close_after: int = 0) -> None:
        self.reply = reply
        self.close_after = close_after  # close the connection after answering this request
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook?x=1"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                answer = self.reply(len(self.requests), head, body)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if len(self.requests) == self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def reply(status: str = "200 OK", body: bytes = OK, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def test_posts_and_reuses_one_connection() -> None:
    async def scenario() -> None:
        server = Server(lambda n, head, body: reply())
        async with server as url:
            pool = Http1Pool(4)
            for i in range(3):
                result = await pool.post(url, HEADERS, b'{"n":%d}' % i, 2)
                assert (result.status, result.body) == (200, OK)
            pool.close()
        assert server.connections == 1
        head, body = server.requests[0]
        assert head.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
        assert b"\r\nHost: 127.0.0.1:" in head and b"\r\nwebhook-id: msg_1\r\n" in head
        assert body == b'{"n":0}'

    run(scenario)


@pytest.mark.parametrize(
    "answer, body",
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX: y\r\n\r\n",
            b"hello world",
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + reply(), OK),
    ],
    ids=["chunked", "no-content", "interim-100"],
)
def test_reads_every_delimited_reply_and_keeps_the_connection(answer: bytes, body: bytes) -> None:
    async def scenario() -> None:
        server = Server(lambda n, head, req: answer)
        async with server as url:
            pool = Http1Pool(4)
            for _ in range(2):
                assert (await pool.post(url, HEADERS, b"{}", 2)).body == body
            pool.close()
        assert server.connections == 1

    run(scenario)


def test_connection_close_http_1_0_and_unframed_replies_use_fresh_connections() -> None:
    answers = [
        reply(extra="Connection: close\r\n"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 503 Busy\r\nRetry-After: 1\r\n\r\nno length: read to the close",
    ]

    async def scenario() -> None:
        for answer in answers:
            unframed = b"503" in answer  # its end is the server closing the connection
            server = Server(lambda n, head, body, answer=answer: answer if n == 1 else reply(), int(unframed))
            async with server as url:
                pool = Http1Pool(4)
                first = await pool.post(url, HEADERS, b"{}", 2)
                if unframed:
                    assert (first.status, first.headers["retry-after"]) == (503, "1")
                    assert first.body == b"no length: read to the close"
                assert (await pool.post(url, HEADERS, b"{}", 2)).status == 200
                pool.close()
            assert server.connections == 2, answer

    async def cut_short() -> None:
        server = Server(lambda n, head, body: None)  # closes without a byte of reply
        async with server as url:
            pool = Http1Pool(4)
            with pytest.raises(TransportError) as raised:
                await pool.post(url, HEADERS, b"{}", 2)
            assert raised.value.kind == "error"

    run(scenario)
    run(cut_short)


def test_a_keep_alive_connection_closed_while_idle_is_retried_on_a_fresh_one() -> None:
    async def scenario() -> None:
        server = Server(lambda n, head, body: reply() if n != 2 else None)  # drops the 2nd unanswered
        async with server as url:
            pool = Http1Pool(4)
            await pool.post(url, HEADERS, b"{}", 2)
            assert (await pool.post(url, HEADERS, b"{}", 2)).status == 200
            pool.close()
        assert server.connections == 2 and len(server.requests) == 3  # the 2nd was sent again

    run(scenario)


@pytest.mark.parametrize(
    "answer",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
        f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_REPLY + 1}\r\n\r\n".encode(),
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    ],
    ids=["not-http", "bad-header", "bad-length", "too-long", "huge-head", "bad-chunk", "truncated"],
)
def test_a_garbled_reply_is_an_error_not_a_crash(answer: bytes) -> None:
    async def scenario() -> None:
        server = Server(lambda n, head, body: answer if n == 1 else None)
        async with server as url:
            pool = Http1Pool(4)
            task = asyncio.ensure_future(pool.post(url, HEADERS, b"{}", 0.5))
            await asyncio.sleep(0.2)
            server.server.close()
            with pytest.raises(TransportError) as raised:
                await task
            assert raised.value.kind in ("error", "timeout")

    run(scenario)


def test_timeout_refused_and_header_injection() -> None:
    async def scenario() -> None:
        server = Server(lambda n, head, body: None if n == 1 else reply())
        hang = await asyncio.start_server(lambda r, w: asyncio.sleep(5), "127.0.0.1", 0)
        port = hang.sockets[0].getsockname()[1]
        pool = Http1Pool(4)
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransportError) as raised:
            await pool.post(f"http://127.0.0.1:{port}/", HEADERS, b"{}", 0.3)
        assert raised.value.kind == "timeout"
        assert asyncio.get_running_loop().time() - started < 1.5
        hang.close()
        with pytest.raises(TransportError) as raised:
            await pool.post(f"http://127.0.0.1:{port}/", HEADERS, b"{}", 1)
        assert raised.value.kind == "refused"
        async with server as url:
            with pytest.raises(TransportError, match="line break"):
                await pool.post(url, {"webhook-id": "x\r\nX-Evil: 1"}, b"{}", 1)
            assert server.requests == []
        pool.close()

    run(scenario)
