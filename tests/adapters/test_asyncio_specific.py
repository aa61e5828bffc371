"""What only the asyncio adapters have: the asyncio Publisher's aiohttp transport, and the
two endpoints (``WebhookASGI`` under uvicorn, aiohttp's ``WebhookHandler``) streaming,
refusing early and answering in JSON, served in this process on real sockets on 127.0.0.1,
each test in a fresh ``asyncio.run`` loop.

The shared scenarios are in ``test_behaviour.py`` (``--framework=asgi``/``aiohttp``);
WebhookASGI driven without a server in ``tests/test_asgi.py``; the Registry's and the
Publisher's hooks in ``tests/test_asyncio.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("uvicorn")

import uvicorn
from aiohttp import web
from zope.interface.verify import verifyObject

from skyhooks import Message, RetryPolicy, Topic, generate_secret
from skyhooks.aiohttp import WebhookHandler
from skyhooks.aiohttp._transport import MAX_REPLY, AiohttpTransport
from skyhooks.asyncio import Publisher, Registry, WebhookASGI
from skyhooks.core.delivery import ITransport
from skyhooks.core.errors import TransportError
from skyhooks.core.stores.memory import MemoryStore
from skyhooks.core.wire import Signer
from tests.support.raw_http import RawServer, hanging_server, read_response
from tests.support.receiver import Receiver, refused_url

A42 = {"account_id": 42}
T42 = Topic("account_id", "42")
SECRET = generate_secret()
HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}
OK = b'{"status":"ok","notified":1}'


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(test(), 60))


def reply(status: str = "200 OK", body: bytes = OK) -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


# -- the transport ---------------------------------------------------------------------------


async def failure(
    transport: AiohttpTransport, url: str, timeout: float = 2, **headers: str
) -> TransportError:
    with pytest.raises(TransportError) as caught:
        await transport.post(url, {**HEADERS, **headers}, b'{"n":1}', timeout)
    return caught.value


def test_the_transport_maps_failures_below_http_and_passes_every_status() -> None:
    async def scenario() -> None:
        transport = AiohttpTransport(4)
        verifyObject(ITransport, transport)
        assert (await failure(transport, refused_url())).kind == "refused"
        assert (await failure(transport, "http://no-such-host.invalid/hook")).kind == "error"
        sock, port = hanging_server()  # accepts (the kernel does), never answers
        started = time.monotonic()
        silent = await failure(transport, f"http://127.0.0.1:{port}/hook", timeout=0.3)
        assert silent.kind == "timeout" and time.monotonic() - started < 1.5, silent
        sock.close()
        with Receiver(script=[503, 410, 302, 200], headers={"Retry-After": "1", "Location": "/x"}) as r:
            results = [await transport.post(r.url, HEADERS, b'{"n":1}', 2) for _ in range(4)]
            assert [result.status for result in results] == [503, 410, 302, 200]  # no redirect followed
            assert results[0].headers["Retry-After"] == "1"
            assert all(json.loads(result.body) == {"status": "ok", "notified": 1} for result in results)
            assert r.requests[0]["body"] == b'{"n":1}'
            sent = {name.lower(): value for name, value in r.requests[0]["headers"].items()}
            assert (sent["webhook-id"], sent["content-type"]) == ("msg_1", "application/json")
            line_break = await failure(transport, r.url, **{"webhook-id": "msg_1\r\nx-injected: 1"})
            assert line_break.kind == "error" and len(r.requests) == 4  # never sent
        await transport.aclose()

    run(scenario)


@pytest.mark.parametrize(
    "answer",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 2xx OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then the server closes
        reply(body=b"x" * (MAX_REPLY + 1)),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (MAX_REPLY, b"x" * MAX_REPLY) * 2
        + b"0\r\n\r\n",
    ],
    ids=["not-http", "bad-status", "bad-chunk", "cut-short", "huge-body", "huge-chunked-body"],
)
def test_garbled_or_huge_replies_are_errors(answer: bytes) -> None:
    async def scenario() -> None:
        transport = AiohttpTransport(4)
        with RawServer(lambda n, head, body: answer, close_after=1) as server:
            assert (await failure(transport, server.url)).kind == "error"
            assert len(server.requests) == 1
        await transport.aclose()

    run(scenario)


def test_a_kept_alive_connection_closed_as_the_request_arrives_is_resent_once() -> None:
    async def scenario() -> None:
        transport = AiohttpTransport(4)
        with RawServer(lambda n, head, body: None if n == 2 else reply()) as server:  # drops the 2nd
            await transport.post(server.url, HEADERS, b"{}", 2)
            assert (await transport.post(server.url, HEADERS, b"{}", 2)).status == 200
            assert server.connections == 2 and len(server.requests) == 3  # the 2nd was sent again
        with RawServer(lambda n, head, body: None) as server:  # never answers, always closes
            assert (await failure(transport, server.url)).kind == "error"
            assert len(server.requests) == 2  # sent once more, not for ever
        await transport.aclose()

    run(scenario)


def test_replies_are_read_on_kept_alive_connections() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"

    async def scenario() -> None:
        transport = AiohttpTransport(4)
        with RawServer(lambda n, head, body: chunked if n == 2 else reply()) as server:
            bodies = [(await transport.post(server.url, HEADERS, b"{}", 2)).body for _ in range(3)]
            assert bodies == [OK, b"hello", OK]
            assert server.connections == 1
        await transport.aclose()

    run(scenario)


def test_one_transport_serves_successive_loops_and_every_way_of_closing() -> None:
    """A publisher used from successive loops (asyncio.run twice: a test's loop per test,
    a script's) gets a session on each; close() from a running loop, after the loops
    ended, or aclose(), all end it without a warning about an unclosed session."""
    store = MemoryStore()
    publisher = Publisher(store, SECRET)
    assert isinstance(publisher.transport, AiohttpTransport)
    with Receiver() as r:
        store.add(r.url, {T42}, ttl=60)

        async def notify() -> bool:
            return (await publisher.notify(A42, None)).ok

        assert asyncio.run(notify())
        assert asyncio.run(notify())  # a new session: the first one's loop has ended
        publisher.transport.close()  # after its loop ended: closed on a loop of its own

        async def close_while_running() -> None:
            assert await notify()
            publisher.transport.close()  # on its running loop: closing, without waiting
            assert await notify()  # (a new session)
            await publisher.aclose()

        asyncio.run(close_while_running())
        assert len(r.requests) == 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_forked_child_connects_anew_and_leaves_the_parents_connection_alone() -> None:
    store = MemoryStore()
    with RawServer(lambda n, head, body: reply()) as server:
        store.add(server.url, {T42}, ttl=60)
        publisher = Publisher(store, SECRET)

        def notify() -> bool:
            async def deliver() -> bool:
                return (await asyncio.wait_for(publisher.notify(A42, None), 10)).ok

            return asyncio.run(deliver())

        loop = asyncio.new_event_loop()  # the parent's session lives on this loop throughout
        try:
            assert loop.run_until_complete(publisher.notify(A42, None)).ok
            fork = multiprocessing.get_context("fork")
            answers = fork.Queue()
            child = fork.Process(target=lambda: answers.put(notify()))
            child.start()
            assert answers.get(timeout=20) is True
            child.join(10)
            assert loop.run_until_complete(publisher.notify(A42, None)).ok
            assert server.connections == 2  # the parent's, kept alive, and the child's
            loop.run_until_complete(publisher.aclose())
        finally:
            loop.close()


def test_the_publisher_bounds_its_connections() -> None:
    async def scenario() -> None:
        receivers = [Receiver(script=["sleep:0.3"]) for _ in range(4)]
        store = MemoryStore()
        for receiver in receivers:
            receiver.__enter__()
            store.add(receiver.url, {T42}, ttl=60)
        try:
            publisher = Publisher(store, SECRET, concurrency=2)
            started = time.monotonic()
            report = await publisher.notify(A42, None)
            assert len(report.delivered) == 4, report
            assert time.monotonic() - started >= 0.55  # two waves of 0.3 s
            await publisher.aclose()
        finally:
            for receiver in receivers:
                receiver.__exit__()

    run(scenario)


def test_importing_skyhooks_aiohttp_without_aiohttp_names_the_extra() -> None:
    code = "import sys; sys.modules['aiohttp'] = None\nimport skyhooks.aiohttp\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ImportError: skyhooks.aiohttp needs aiohttp: pip install 'skyhooks[aiohttp]'" in result.stderr


# -- the endpoints, served here ---------------------------------------------------------------

ENDPOINTS = ["asgi", "aiohttp"]


@contextlib.asynccontextmanager
async def serve(endpoint: str, registry: Registry) -> AsyncIterator[int]:
    """Serve *registry*'s endpoint on a free port: WebhookASGI as uvicorn's app (at the
    root: its lifespan starts and stops the registry), or aiohttp's WebhookHandler."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if endpoint == "asgi":
        server = uvicorn.Server(uvicorn.Config(WebhookASGI(registry), lifespan="on", log_level="warning"))
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            assert not serving.done(), serving
            await asyncio.sleep(0.01)
        yield port
        server.should_exit = True
        await asyncio.wait_for(serving, 15)
    else:
        app = web.Application()
        app.router.add_route("*", "/skyhooks", WebhookHandler(registry))
        runner = web.AppRunner(app)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        yield port
        await runner.cleanup()


async def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send *head* (request line and headers) and *body*; read one final answer (past any
    ``100 Continue``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    while True:
        status = int((await reader.readline()).split()[1])
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if status != 100:
            break
    payload = await reader.readexactly(int(headers.get("content-length", 0)))
    writer.close()
    return status, headers, payload


def signed_head(message: Any, extra: str = "") -> str:
    lines = "".join(f"{name}: {value}\n" for name, value in message.headers.items())
    return f"POST /skyhooks HTTP/1.1\nHost: x\n{lines}{extra}"


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


Check = Callable[[int, Registry, list[Message]], Awaitable[None]]


def endpoint_scenario(endpoint: str, check: Check) -> None:
    got: list[Message] = []

    async def scenario() -> None:
        registry = Registry("http://127.0.0.1:1/skyhooks", "memory://", SECRET)
        registry.register(A42, got.append)
        async with serve(endpoint, registry) as port:
            await check(port, registry, got)

    run(scenario)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_oversized_declared_body_is_refused_from_its_length(endpoint: str) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        size = registry.max_body_size + 1
        head = f"POST /skyhooks HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {size}\n"
        # Without the body: answered from the length alone, before a byte of it arrives.
        started = time.monotonic()
        status, headers, body = await raw_request(port, head)
        assert time.monotonic() - started < 1.5
        assert (status, headers["content-type"]) == (413, "application/json")
        assert json.loads(body)["error"] == f"body of {size} bytes is over the limit of {size - 1}"

    endpoint_scenario(endpoint, check)


def test_webhook_asgi_answers_an_oversized_declared_body_before_100_continue() -> None:
    """uvicorn sends ``100 Continue`` when the app first reads: WebhookASGI answers
    without reading. (aiohttp answers ``100 Continue`` itself before any handler runs,
    unless the route is given an ``expect_handler``.)"""

    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        head = (
            "POST /skyhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {registry.max_body_size + 1}\r\nExpect: 100-continue\r\n\r\n"
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head.encode())
        assert (await reader.readline()).startswith(b"HTTP/1.1 413")
        rest = await asyncio.wait_for(reader.read(), 5)  # closed once it stops lingering
        assert b"connection: close" in rest.lower()
        writer.close()

    endpoint_scenario("asgi", check)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_streamed_body_is_refused_past_the_limit_and_the_answer_arrives_whole(endpoint: str) -> None:
    """The sender writes the whole oversized body before it reads: the answer must
    reach it, not a reset from a server that closed with bytes unread."""

    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        head = (
            "POST /skyhooks HTTP/1.1\nHost: x\nContent-Type: application/json\nTransfer-Encoding: chunked\n"
        )
        for _ in range(3):
            status, _, body = await raw_request(port, head, chunked(*[b"x" * 65536] * 20))
            assert status == 413 and json.loads(body)["status"] == "error"
        assert got == []

    endpoint_scenario(endpoint, check)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_chunked_body_within_the_limit_is_accepted(endpoint: str) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        message = Signer(SECRET).build(A42, "chunked")
        middle = len(message.body) // 2
        body = chunked(message.body[:middle], message.body[middle:])
        status, _, answer = await raw_request(
            port, signed_head(message, "Transfer-Encoding: chunked\n"), body
        )
        assert (status, json.loads(answer)) == (200, {"status": "ok", "notified": 1})
        assert [m.data for m in got] == ["chunked"]

    endpoint_scenario(endpoint, check)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_any_method_gets_the_cores_json_405(endpoint: str) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        for method in ("GET", "DELETE", "PROPFIND"):  # (aiohttp's parser answers 400 to unknown ones)
            status, headers, body = await raw_request(port, f"{method} /skyhooks HTTP/1.1\nHost: x\n")
            assert status == 405 and headers["allow"] == "POST"
            assert json.loads(body)["error"] == f"method {method} not allowed; webhooks are POSTed"

    endpoint_scenario(endpoint, check)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_header_names_in_any_case_are_read(endpoint: str) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        message = Signer(SECRET).build(A42, "cased")
        lines = "".join(f"{name.upper()}: {value}\n" for name, value in message.headers.items())
        head = f"POST /skyhooks HTTP/1.1\nHost: x\ncontent-LENGTH: {len(message.body)}\n{lines}"
        status, _, body = await raw_request(port, head, message.body)
        assert (status, json.loads(body)) == (200, {"status": "ok", "notified": 1})
        assert [m.data for m in got] == ["cased"]

    endpoint_scenario(endpoint, check)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_keep_alive_head_and_a_bug_answered_in_json(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        signer = Signer(SECRET)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def exchange(request: bytes, method: str = "POST") -> tuple[bytes, dict[str, str], bytes]:
            writer.write(request)
            return await read_response(reader, method)

        def post(data: Any) -> bytes:
            message = signer.build(A42, data)
            head = signed_head(message, f"Content-Length: {len(message.body)}\n").replace("\n", "\r\n")
            return head.encode() + b"\r\n" + message.body

        for n in range(2):  # one connection, two webhooks
            status, _, body = await exchange(post(n))
            assert status.startswith(b"HTTP/1.1 200") and json.loads(body) == {"status": "ok", "notified": 1}
        status, headers, body = await exchange(b"HEAD /skyhooks HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD")
        assert status.startswith(b"HTTP/1.1 405") and headers["allow"] == "POST" and body == b""

        def broken(*args: Any) -> Any:
            raise RuntimeError("a bug")

        monkeypatch.setattr(registry, "handle_request", broken)
        status, headers, body = await exchange(post("x"))
        assert status.startswith(b"HTTP/1.1 500") and headers["content-type"] == "application/json"
        assert json.loads(body)["status"] == "error" and b"Traceback" not in body
        writer.close()
        assert [m.data for m in got] == [0, 1]

    endpoint_scenario(endpoint, check)


def test_webhook_asgi_as_uvicorns_app_starts_and_stops_the_registry_in_its_lifespan() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        registry = Registry("http://127.0.0.1:1/skyhooks", store, SECRET)
        registry.register(A42, print)
        async with serve("asgi", registry):
            await registry.register(A42, repr)  # done once the store writes before it are
            assert store.lookup({T42}) == {registry.url: frozenset({T42})}
        assert store.lookup({T42}) == {}  # the lifespan's shutdown stopped it

    run(scenario)


# -- the Publisher into both endpoints ---------------------------------------------------------


def test_the_publisher_delivers_to_both_endpoints_retries_and_prunes() -> None:
    store = MemoryStore()
    got: list[Message] = []

    async def scenario() -> None:
        asgi = Registry("http://127.0.0.1:1/skyhooks", store, SECRET)
        aio = Registry("http://127.0.0.1:1/skyhooks", store, SECRET)
        async with serve("asgi", asgi) as asgi_port, serve("aiohttp", aio) as aio_port:
            asgi.url = f"http://127.0.0.1:{asgi_port}/skyhooks"
            aio.url = f"http://127.0.0.1:{aio_port}/skyhooks"
            aio.start()
            await asgi.register(A42, got.append)
            await aio.register(A42, got.append)
            dead = refused_url()
            retry = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02, deadline=3, timeout=0.5)
            publisher = Publisher(store, SECRET, retry=retry)
            with Receiver(script=[503, 200]) as flaky, Receiver(script=["hang"]) as hanging:
                for other in (dead, flaky.url, hanging.url):
                    store.add(other, {T42}, ttl=60)
                report = await publisher.notify(A42, {"n": 1})
                hanging.release()
            assert report.delivered == {asgi.url, aio.url, flaky.url}
            assert report.failed[dead].startswith("refused: ")
            assert report.failed[hanging.url].startswith("timeout: ")
            assert report.pruned == {dead}
            assert report.notified == 3
            assert [m.data for m in got] == [{"n": 1}, {"n": 1}]
            await publisher.aclose()
            await aio.stop()

    run(scenario)
