"""What only the Tornado adapter has: both AsyncHTTPClient implementations, the streaming
handler's early refusals, and the registry's own executor and lazy loop binding.

The shared scenarios are in ``test_behaviour.py``; these run in-process, on real
sockets on 127.0.0.1, each test in a fresh ``asyncio.run`` loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytest.importorskip("tornado")

from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPHeaders
from tornado.netutil import bind_sockets
from tornado.simple_httpclient import SimpleAsyncHTTPClient
from tornado.web import Application

from skyhooks import Message, Topic, generate_secret
from skyhooks.core.wire import Signer
from skyhooks.core.stores.memory import MemoryStore
from skyhooks.tornado import Publisher, Registry, WebhookDelegate, WebhookHandler
from skyhooks.tornado._headers import core_headers
from tests.support.receiver import Receiver, refused_url

A42 = {"account_id": 42}
T42 = Topic("account_id", "42")

# None: skyhooks' own HTTP/1.1 client (the default); then Tornado's, through client_class.
CLIENTS: list[Any] = [None, SimpleAsyncHTTPClient]
try:
    from tornado.curl_httpclient import CurlAsyncHTTPClient

    CLIENTS.insert(1, CurlAsyncHTTPClient)
except ImportError:  # pragma: no cover - pycurl is in the test environment
    pass


def client_id(client_class: Any) -> str:
    return "Http1Pool" if client_class is None else client_class.__name__


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


async def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send *head* (request line and headers) and *body*; read one answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    status_line = await reader.readline()
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    payload = await reader.readexactly(int(headers.get("content-length", 0)))
    writer.close()
    return int(status_line.split()[1]), headers, payload


# -- Publisher: both HTTP clients ------------------------------------------------------


@pytest.mark.parametrize("client_class", CLIENTS, ids=client_id)
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
        if client_class is None:
            assert publisher._http is not None and publisher._client is None
        else:
            assert isinstance(publisher._client, client_class)
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


@pytest.mark.parametrize("client_class", CLIENTS, ids=client_id)
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


def test_publisher_needs_no_pycurl() -> None:
    code = (
        "import sys; sys.modules['pycurl'] = None\n"
        "from skyhooks import generate_secret\n"
        "from skyhooks.tornado import Publisher\n"
        "assert Publisher('memory://', generate_secret()).client_class is None\n"
        "print('own client')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "own client", result.stderr


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
        status, headers, body = await raw_request(port, head)  # the body is never sent
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
        status, _, body = await raw_request(port, head, chunks)
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


def test_core_headers_reads_the_four_and_content_length_and_joins_repeats() -> None:
    headers = HTTPHeaders.parse(
        "Host: x\r\nCONTENT-type: application/json\r\nwebhook-id: msg_1\r\nX-Other: 1\r\n"
        "Webhook-Timestamp: 5\r\nContent-Length: 2\r\nwebhook-signature: v1,a\r\n"
        "Webhook-Signature: v1,b\r\n"
    )
    assert core_headers(headers) == {
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "webhook-timestamp": "5",
        "content-length": "2",
        "webhook-signature": headers.get("webhook-signature"),  # "v1,a,v1,b", as Tornado joins them
    }
    assert core_headers(HTTPHeaders()) == {}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_keep_alive_head_and_a_bug_answered_in_json(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def check(port: int, registry: Registry, got: list[Message]) -> None:
        signer = Signer(SECRET)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def exchange(request: bytes, method: str = "POST") -> tuple[bytes, dict[str, str], bytes]:
            writer.write(request)
            status = await reader.readline()
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            size = 0 if method == "HEAD" else int(headers["content-length"])
            return status, headers, await reader.readexactly(size)

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


# -- Registry ----------------------------------------------------------------------------


class SlowStore(MemoryStore):
    """A real memory store whose writes take 0.3 s and note the thread they ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def renew(self, url: str, topics: Any, ttl: float) -> None:
        self.threads.append(threading.current_thread().name)
        time.sleep(0.3)
        super().renew(url, topics, ttl)


def test_registry_built_before_the_loop_binds_to_the_loop_that_runs_it() -> None:
    store = SlowStore()
    registry = Registry("http://127.0.0.1:9/skyhooks", store, SECRET)  # no loop exists yet
    got: list[Message] = []

    async def scenario() -> None:
        registry.start()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.ensure_future(ticker())
        await registry.register(A42, got.append)
        ticking.cancel()
        assert ticks >= 15  # the loop kept running while the store took 0.3 s
        assert store.lookup({T42}) == {registry.url: frozenset({T42})}
        assert await registry.stop() is True

    run(scenario)
    assert store.threads and all(name.startswith("skyhooks-registry") for name in store.threads)


def test_a_busy_default_executor_does_not_starve_store_calls() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(2))
        blockers = [loop.run_in_executor(None, time.sleep, 1) for _ in range(4)]  # 2 s of queue
        registry = Registry("http://127.0.0.1:9/skyhooks", "memory://", SECRET)
        registry.start()
        started = time.monotonic()
        await registry.register(A42, print)
        assert time.monotonic() - started < 1
        await registry.stop()
        await asyncio.gather(*blockers)

    run(scenario)


def test_async_callbacks_run_and_their_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    async def fine(message: Message) -> None:
        await asyncio.sleep(0)
        seen.append(message.id)

    async def failing(message: Message) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async callback fails on purpose")

    async def scenario() -> None:
        registry = Registry("http://127.0.0.1:9/skyhooks", "memory://", SECRET)
        registry.register(A42, fine)
        registry.register(A42, failing)
        assert registry.dispatch(Message(keys=A42, data=None, id="msg_1")) == 2
        await asyncio.sleep(0.05)
        assert seen == ["msg_1"]
        assert not registry._tasks  # finished tasks are let go

    with caplog.at_level(logging.ERROR, logger="skyhooks.tornado"):
        run(scenario)
    assert any("async callback fails on purpose" in str(r.exc_info) for r in caplog.records)


def _retry(**fields: Any) -> Any:
    from skyhooks import RetryPolicy

    return RetryPolicy(backoff=0.05, **fields)
