"""What only the Tornado adapter has: its transport over both AsyncHTTPClient
implementations, and the two endpoints' streaming and early refusals.

The shared scenarios are in ``test_behaviour.py``, the Registry's and the asyncio
Publisher's hooks in ``tests/test_asyncio.py``; these run in-process, on real sockets
on 127.0.0.1, each test in a fresh ``asyncio.run`` loop.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado")

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.simple_httpclient import SimpleAsyncHTTPClient
from tornado.web import Application

from skyhooks import Message, Topic, generate_secret
from skyhooks.core.errors import TransportError
from skyhooks.core.stores.memory import MemoryStore
from skyhooks.core.wire import Signer
from skyhooks.tornado import Publisher, Registry, WebhookDelegate, WebhookHandler
from tests.support.raw_http import RawServer, hanging_server, read_response, self_signed
from tests.support.receiver import Receiver, refused_url

A42 = {"account_id": 42}
T42 = Topic("account_id", "42")

try:
    from tornado.curl_httpclient import CurlAsyncHTTPClient
except ImportError:  # a visible skip, below
    CurlAsyncHTTPClient = None

# Tornado's two clients: curl (the default, when pycurl imports), and its own.
CLIENTS = [
    pytest.param(
        CurlAsyncHTTPClient,
        id="CurlAsyncHTTPClient",
        marks=pytest.mark.skipif(CurlAsyncHTTPClient is None, reason="pycurl is not installed"),
    ),
    pytest.param(SimpleAsyncHTTPClient, id="SimpleAsyncHTTPClient"),
]


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(test(), 30))


# The two endpoints: a RequestHandler, and a routing target without one.
ENDPOINTS = ["WebhookHandler", "WebhookDelegate"]


def route(registry: Registry, endpoint: str = "WebhookHandler") -> tuple[Any, ...]:
    if endpoint == "WebhookDelegate":
        return (r"/skyhooks", WebhookDelegate(registry))
    return (r"/skyhooks", WebhookHandler, {"registry": registry})


async def serve(
    registry: Registry, endpoint: str = "WebhookHandler", **settings: Any
) -> tuple[HTTPServer, int]:
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(Application([route(registry, endpoint)], **settings))
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


async def raw_request(
    port: int, head: str, body: bytes = b"", closes: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Send *head* (request line and headers) and *body*; read one answer (and, if
    *closes*, check that the server then closes the connection, saying so)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    status_line = await reader.readline()
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    payload = await reader.readexactly(int(headers.get("content-length", 0)))
    if closes:
        assert headers["connection"] == "close"
        try:
            assert await asyncio.wait_for(reader.read(), 5) == b""
        except ConnectionResetError:
            pass  # closed with the unread body still in its buffer: as closed
    writer.close()
    return int(status_line.split()[1]), headers, payload


# -- Publisher: its transport over both of Tornado's clients ------------------------------


def test_the_default_client_is_curl_when_pycurl_imports() -> None:
    if CurlAsyncHTTPClient is None:
        pytest.skip("pycurl is not installed")
    publisher = Publisher("memory://", generate_secret())
    assert publisher.client_class is CurlAsyncHTTPClient
    assert publisher.transport.client_class is CurlAsyncHTTPClient
    assert publisher.transport.max_clients == publisher.concurrency
    publisher.close()


def test_publisher_needs_no_pycurl() -> None:
    code = (
        "import sys; sys.modules['pycurl'] = None\n"
        "from skyhooks import generate_secret\n"
        "from skyhooks.tornado import Publisher\n"
        "print(Publisher('memory://', generate_secret()).client_class.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "SimpleAsyncHTTPClient", result.stderr


@pytest.mark.parametrize("client_class", CLIENTS)
def test_the_transport_maps_failures_below_http_and_passes_every_status(client_class: Any) -> None:
    headers = {"content-type": "application/json", "webhook-id": "msg_1"}

    async def post(url: str, timeout: float = 2) -> Any:
        return await transport.post(url, headers, b'{"n":1}', timeout)

    async def failure(url: str, timeout: float = 2) -> TransportError:
        with pytest.raises(TransportError) as caught:
            await post(url, timeout)
        return caught.value

    async def scenario() -> None:
        refused = await failure(refused_url())
        assert refused.kind == "refused", refused
        sock, port = hanging_server()  # accepts (the kernel does), never answers
        started = time.monotonic()
        silent = await failure(f"http://127.0.0.1:{port}/hook", timeout=0.3)
        assert silent.kind == "timeout" and time.monotonic() - started < 1.5, silent
        sock.close()
        with Receiver(script=[503, 410, 302, 200], headers={"Retry-After": "1", "Location": "/x"}) as r:
            results = [await post(r.url) for _ in range(4)]
            assert [result.status for result in results] == [503, 410, 302, 200]  # no redirect followed
            assert results[0].headers["Retry-After"] == "1"
            assert all(json.loads(result.body) == {"status": "ok", "notified": 1} for result in results)
            assert len(r.requests) == 4 and r.requests[0]["body"] == b'{"n":1}'
            sent = {name.lower(): value for name, value in r.requests[0]["headers"].items()}
            assert (sent["webhook-id"], sent["content-type"]) == ("msg_1", "application/json")

    publisher = Publisher(MemoryStore(), generate_secret(), client_class=client_class)
    transport = publisher.transport
    assert transport.client_class is client_class
    try:
        run(scenario)
    finally:
        publisher.close()


@pytest.mark.skipif(CurlAsyncHTTPClient is None, reason="pycurl is not installed")
def test_a_kept_alive_connection_closed_as_the_request_arrives_is_resent_once() -> None:
    """libcurl sends once more, on a new connection, what met a reused connection closed
    unanswered (Tornado's simple client keeps no connection alive: it never meets one)."""
    publisher = Publisher(MemoryStore(), generate_secret(), client_class=CurlAsyncHTTPClient)
    headers = {"content-type": "application/json", "webhook-id": "msg_1"}
    ok = b'{"status":"ok","notified":1}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ok), ok)

    async def scenario() -> None:
        with RawServer(lambda n, head, body: None if n == 2 else answer) as server:  # drops the 2nd
            await publisher.transport.post(server.url, headers, b"{}", 2)
            assert (await publisher.transport.post(server.url, headers, b"{}", 2)).status == 200
            assert server.connections == 2 and len(server.requests) == 3  # the 2nd was sent again

    try:
        run(scenario)
    finally:
        publisher.close()


@pytest.mark.parametrize("client_class", CLIENTS)
def test_one_transport_serves_successive_loops_and_closes_after_them(client_class: Any) -> None:
    """A publisher made once and used from successive loops (asyncio.run twice, a test's
    loop per test): each loop gets a client of its own (another loop's would fail
    with 'Event loop is closed'), and close() after the loops have ended does not raise."""
    store = MemoryStore()
    publisher = Publisher(store, generate_secret(), client_class=client_class)
    with Receiver() as r:
        store.add(r.url, {T42}, ttl=60)

        async def notify() -> bool:
            return (await publisher.notify(A42, None)).ok

        assert asyncio.run(notify())
        assert asyncio.run(notify())
        assert len(r.requests) == 2
    publisher.close()


@pytest.mark.skipif(CurlAsyncHTTPClient is None, reason="pycurl is not installed")
@pytest.mark.skipif(not hasattr(os, "fork") or not shutil.which("openssl"), reason="no fork() or openssl")
def test_a_forked_child_leaves_the_parents_connections_alone(tmp_path: Path) -> None:
    """A child forked while the parent's loop runs (in a thread here) gets a client of
    its own, and never closes the parent's: closing would end the parent's kept-alive
    TLS connection too (curl says goodbye on it), costing the parent a new one."""

    class Trusting(CurlAsyncHTTPClient):
        def initialize(self, **options: Any) -> None:
            super().initialize(defaults={"validate_cert": False}, **options)

    store = MemoryStore()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 28\r\n\r\n" + b'{"status":"ok","notified":1}'
    loop = asyncio.new_event_loop()
    running = threading.Thread(target=loop.run_forever)
    running.start()
    with RawServer(lambda n, head, body: answer, tls=self_signed(tmp_path)[0]) as server:
        store.add(server.url, {T42}, ttl=60)
        publisher = Publisher(store, generate_secret(), client_class=Trusting)

        def notify() -> bool:
            return asyncio.run_coroutine_threadsafe(publisher.notify(A42, None), loop).result(10).ok

        def in_child() -> None:
            async def deliver() -> bool:
                return (await asyncio.wait_for(publisher.notify(A42, None), 5)).ok

            answers.put(asyncio.run(deliver()))

        try:
            assert notify() and server.connections == 1
            fork = multiprocessing.get_context("fork")
            answers = fork.Queue()
            child = fork.Process(target=in_child)
            child.start()
            assert answers.get(timeout=20) is True
            child.join(10)
            assert notify() and notify()
            assert server.connections == 2  # the parent's, still alive, and the child's
        finally:
            loop.call_soon_threadsafe(publisher.close)
            loop.call_soon_threadsafe(loop.stop)
            running.join(10)
            loop.close()


@pytest.mark.parametrize("client_class", CLIENTS)
def test_publisher_delivers_retries_and_maps_failures_with(client_class: Any) -> None:
    secret, store = generate_secret(), MemoryStore()
    got: list[Message] = []

    async def scenario() -> None:
        registry = Registry("http://127.0.0.1:1/skyhooks", store, secret)
        server, port = await serve(registry)
        registry.url = url = f"http://127.0.0.1:{port}/skyhooks"
        registry.start()
        await registry.register(A42, got.append)
        dead = refused_url()
        publisher = Publisher(
            store, secret, client_class=client_class, retry=_retry(attempts=2, timeout=0.5, deadline=3)
        )
        with (
            Receiver(script=[503, 200]) as flaky,
            Receiver(script=["hang"]) as hanging,
            Receiver(script=[410]) as gone,
        ):
            for other in (dead, flaky.url, hanging.url, gone.url):
                store.add(other, {T42}, ttl=60)
            report = await publisher.notify(A42, {"n": 1})
        assert report.delivered == {url, flaky.url}
        assert report.failed[dead].startswith("refused: ")
        assert report.failed[hanging.url].startswith("timeout: ")
        assert report.failed[gone.url] == "HTTP 410 after 1 attempt"
        assert report.pruned == {dead, gone.url}
        assert report.notified == 2  # one local callback, one from the flaky receiver
        assert [m.data for m in got] == [{"n": 1}]
        publisher.close()
        await registry.stop()
        server.stop()

    run(scenario)


@pytest.mark.parametrize("client_class", CLIENTS)
def test_publisher_bounds_concurrent_posts_with(client_class: Any) -> None:
    store, in_flight, peak = MemoryStore(), [0], [0]
    lock = threading.Lock()

    receivers = [Receiver(script=["sleep:0.3"]) for _ in range(5)]
    for receiver in receivers:
        original = receiver.server.RequestHandlerClass.do_POST  # type: ignore[attr-defined]

        def counted(handler: Any, original: Any = original) -> None:
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            try:
                original(handler)
            finally:
                with lock:
                    in_flight[0] -= 1

        receiver.server.RequestHandlerClass.do_POST = counted  # type: ignore[attr-defined]
        receiver.__enter__()
        store.add(receiver.url, {T42}, ttl=60)

    async def scenario() -> float:
        publisher = Publisher(store, generate_secret(), client_class=client_class, concurrency=2)
        started = time.monotonic()
        report = await publisher.notify(A42, None)
        assert len(report.delivered) == 5, report
        publisher.close()
        return time.monotonic() - started

    try:
        elapsed = run(scenario)
    finally:
        for receiver in receivers:
            receiver.__exit__()
    assert peak[0] == 2
    assert elapsed >= 0.85  # three waves of 0.3 s


def test_importing_without_tornado_names_the_extra() -> None:
    code = "import sys; sys.modules['tornado'] = None\nimport skyhooks.tornado\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ImportError: skyhooks.tornado needs tornado: pip install 'skyhooks[tornado]'" in result.stderr


# -- WebhookHandler ---------------------------------------------------------------------


Check = Callable[[int, Registry, list[Message]], Awaitable[None]]


def _handler_scenario(check: Check, endpoint: str, **settings: Any) -> None:
    got: list[Message] = []

    async def scenario() -> None:
        registry = Registry("http://127.0.0.1:1/skyhooks", "memory://", SECRET)
        registry.register(A42, got.append)
        server, port = await serve(registry, endpoint, **settings)
        await check(port, registry, got)
        server.stop()

    run(scenario)


SECRET = generate_secret()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_oversized_declared_body_is_refused_before_100_continue(endpoint: str) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        head = (
            f"POST /skyhooks HTTP/1.1\nHost: x\nContent-Type: application/json\n"
            f"Content-Length: {registry.max_body_size + 1}\nExpect: 100-continue\n"
        )
        status, headers, body = await raw_request(port, head, closes=True)  # the body is never sent
        assert status == 413
        assert headers["content-type"] == "application/json"
        assert json.loads(body) == {
            "status": "error",
            "error": (
                f"body of {registry.max_body_size + 1} bytes is over the limit of {registry.max_body_size}"
            ),
        }

    _handler_scenario(check, endpoint)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_oversized_chunked_body_is_refused_once_it_passes_the_limit(endpoint: str) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        chunk = b"x" * 65536
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
        head = (
            "POST /skyhooks HTTP/1.1\nHost: x\nContent-Type: application/json\nTransfer-Encoding: chunked\n"
        )
        status, _, body = await raw_request(port, head, chunks, closes=True)
        assert status == 413 and json.loads(body)["status"] == "error"
        assert got == []

    _handler_scenario(check, endpoint)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_small_chunked_body_is_accepted(endpoint: str) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        message = Signer(SECRET).build(A42, "chunked")
        head = "POST /skyhooks HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n" + "".join(
            f"{name}: {value}\n" for name, value in message.headers.items()
        )
        middle = len(message.body) // 2
        parts = (message.body[:middle], message.body[middle:])
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"
        status, _, body = await raw_request(port, head, chunks)
        assert (status, json.loads(body)) == (200, {"status": "ok", "notified": 1})
        assert [m.data for m in got] == ["chunked"]

    _handler_scenario(check, endpoint)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_method_tornado_does_not_know_gets_the_cores_json_405(endpoint: str) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        head = "BREW /skyhooks HTTP/1.1\nHost: x\nContent-Length: 0\n"
        status, headers, body = await raw_request(port, head)
        assert status == 405 and headers["allow"] == "POST"
        assert json.loads(body)["error"] == "method BREW not allowed; webhooks are POSTed"

    _handler_scenario(check, endpoint)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_signed_posts_pass_an_app_with_xsrf_cookies(endpoint: str) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        message = Signer(SECRET).build(A42, 1)
        head = f"POST /skyhooks HTTP/1.1\nHost: x\nContent-Length: {len(message.body)}\n" + "".join(
            f"{name}: {value}\n" for name, value in message.headers.items()
        )
        status, _, body = await raw_request(port, head, message.body)
        assert (status, json.loads(body)) == (200, {"status": "ok", "notified": 1})

    _handler_scenario(check, endpoint, xsrf_cookies=True)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_header_names_in_any_case_are_read_and_a_repeated_signature_is_refused(endpoint: str) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        message = Signer(SECRET).build(A42, "cased")
        lines = "".join(f"{name.upper()}: {value}\n" for name, value in message.headers.items())
        head = f"POST /skyhooks HTTP/1.1\nHost: x\ncontent-LENGTH: {len(message.body)}\n{lines}"
        status, _, body = await raw_request(port, head, message.body)
        assert (status, json.loads(body)) == (200, {"status": "ok", "notified": 1})
        # Sent twice, the values are joined ("a,b") as HTTPHeaders.get joins them:
        # the joined value is no valid signature, so nothing is dispatched twice.
        again = Signer(SECRET).build(A42, "twice")
        signature = again.headers["webhook-signature"]
        head = (
            f"POST /skyhooks HTTP/1.1\nHost: x\nContent-Length: {len(again.body)}\n"
            + "".join(f"{name}: {value}\n" for name, value in again.headers.items())
            + f"Webhook-Signature: {signature}\n"
        )
        status, _, body = await raw_request(port, head, again.body)
        assert status == 401 and json.loads(body)["status"] == "error"
        assert [m.data for m in got] == ["cased"]

    _handler_scenario(check, endpoint)


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
            head = "".join(f"{name}: {value}\r\n" for name, value in message.headers.items())
            start = f"POST /skyhooks HTTP/1.1\r\nHost: x\r\n{head}"
            return f"{start}Content-Length: {len(message.body)}\r\n\r\n".encode() + message.body

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

    _handler_scenario(check, endpoint)


def _retry(**fields: Any) -> Any:
    from skyhooks import RetryPolicy

    return RetryPolicy(backoff=0.05, **fields)
