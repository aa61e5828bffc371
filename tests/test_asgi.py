"""WebhookASGI driven directly, with hand-made ASGI scopes and messages (no server): what
it reads and when, what it answers, its lifespan, WebSockets, and callbacks that are
coroutine functions. The same app under uvicorn, over real sockets, is in
``tests/adapters/test_asyncio_specific.py`` and the behaviour suite (``--framework=asgi``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from skyhooks import Message, Topic, generate_secret
from skyhooks.asyncio import Registry, WebhookASGI
from skyhooks.core.stores.memory import MemoryStore
from skyhooks.core.wire import Signer

SECRET = generate_secret()
URL = "http://127.0.0.1:9/skyhooks"
A42 = {"account_id": 42}
T42 = Topic("account_id", "42")


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(test(), 30))


def http_scope(method: str = "POST", headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/skyhooks",
        "raw_path": b"/skyhooks",
        "root_path": "",
        "query_string": b"",
        "headers": [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class Exchange:
    """One connection as an ASGI server shows it: scripted incoming messages for
    ``receive``, every ``send`` recorded, and the order of the two in ``events``.
    With nothing scripted left, ``receive`` waits, as a server's does for bytes."""

    def __init__(self, *incoming: dict[str, Any]) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in incoming:
            self.incoming.put_nowait(message)
        self.events: list[str] = []
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.events.append("receive")
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.events.append(message["type"])
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def signed(data: Any, keys: dict[str, Any] = A42) -> tuple[dict[str, str], bytes]:
    message = Signer(SECRET).build(keys, data)
    return {**message.headers, "content-length": str(len(message.body))}, message.body


def body_messages(body: bytes, pieces: int = 1) -> list[dict[str, Any]]:
    size = -(-len(body) // pieces)
    chunks = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    return [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]


async def call(app: WebhookASGI, scope: dict[str, Any], exchange: Exchange) -> Exchange:
    await app(scope, exchange.receive, exchange.send)
    return exchange


# -- HTTP -------------------------------------------------------------------------------------


def test_a_signed_post_is_dispatched_and_answered_with_byte_headers() -> None:
    async def scenario() -> None:
        registry = Registry(URL, "memory://", SECRET)
        got: list[Message] = []
        registry.register(A42, got.append)
        headers, body = signed({"n": 1})
        done = await call(WebhookASGI(registry), http_scope(headers=headers), Exchange(*body_messages(body)))
        assert done.status == 200 and json.loads(done.body) == {"status": "ok", "notified": 1}
        assert done.headers[b"content-type"] == b"application/json"
        assert done.headers[b"content-length"] == str(len(done.body)).encode()
        assert b"connection" not in done.headers  # kept alive
        assert [m.data for m in got] == [{"n": 1}]
        assert done.events == ["receive", "http.response.start", "http.response.body"]

    run(scenario)


def test_a_body_in_many_messages_is_read_whole() -> None:
    async def scenario() -> None:
        registry = Registry(URL, "memory://", SECRET)
        got: list[Message] = []
        registry.register(A42, got.append)
        headers, body = signed({"text": "x" * 5000})
        del headers["content-length"]  # as a chunked request arrives
        done = await call(
            WebhookASGI(registry), http_scope(headers=headers), Exchange(*body_messages(body, 7))
        )
        assert (done.status, json.loads(done.body)["notified"]) == (200, 1)
        assert done.events.count("receive") == 7
        assert got[0].data == {"text": "x" * 5000}

    run(scenario)


def test_a_declared_length_over_the_limit_is_refused_before_any_read() -> None:
    async def scenario() -> None:
        registry = Registry(URL, "memory://", SECRET, max_body_size=1000)
        got: list[Message] = []
        registry.register(A42, got.append)
        headers = {"content-type": "application/json", "content-length": "1001"}
        # The sender closes once answered: the app's reading on (see the next test) ends there.
        done = await call(
            WebhookASGI(registry), http_scope(headers=headers), Exchange({"type": "http.disconnect"})
        )
        assert done.events[:2] == ["http.response.start", "http.response.body"]  # answered first
        assert done.status == 413 and done.headers[b"connection"] == b"close"
        assert json.loads(done.body) == {
            "status": "error",
            "error": "body of 1001 bytes is over the limit of 1000",
        }
        assert done.sent[-1] == {"type": "http.response.body", "body": b""}  # then the server may close
        assert got == []

    run(scenario)


def test_a_streamed_body_is_refused_once_past_the_limit_and_what_follows_is_read_and_dropped() -> None:
    """Closing with bytes unread resets the connection, and the sender may lose the
    answer with it: the app reads on, dropping, up to four times the limit."""

    async def scenario() -> None:
        registry = Registry(URL, "memory://", SECRET, max_body_size=1000)
        got: list[Message] = []
        registry.register(A42, got.append)
        endless = [{"type": "http.request", "body": b"x" * 600, "more_body": True} for _ in range(100)]
        exchange = Exchange(*endless)
        done = await call(
            WebhookASGI(registry), http_scope(headers={"content-type": "application/json"}), exchange
        )
        assert done.status == 413 and done.headers[b"connection"] == b"close"
        assert json.loads(done.body)["error"] == "body of 1200 bytes is over the limit of 1000"
        reads_before = done.events.index("http.response.start")
        assert reads_before == 2  # refused at the second piece
        assert done.events.count("receive") - reads_before == 7  # 4000 bytes more, then no further
        assert got == []

    run(scenario)


def test_a_sender_that_leaves_mid_body_gets_no_answer_and_nothing_is_dispatched() -> None:
    async def scenario() -> None:
        registry = Registry(URL, "memory://", SECRET)
        got: list[Message] = []
        registry.register(A42, got.append)
        headers, body = signed(1)
        first = {"type": "http.request", "body": body[:10], "more_body": True}
        done = await call(
            WebhookASGI(registry), http_scope(headers=headers), Exchange(first, {"type": "http.disconnect"})
        )
        assert done.sent == [] and got == []

    run(scenario)


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {}, 405),
        ("HEAD", {}, 405),
        ("POST", {"content-type": "text/plain"}, 415),
        ("POST", {"content-type": "application/json"}, 401),
    ],
)
def test_refusals_are_the_cores_json(method: str, headers: dict[str, str], status: int) -> None:
    async def scenario() -> None:
        registry = Registry(URL, "memory://", SECRET)
        done = await call(WebhookASGI(registry), http_scope(method, headers), Exchange(*body_messages(b"{}")))
        assert done.status == status
        assert json.loads(done.body)["status"] == "error"
        if status == 405:
            assert done.headers[b"allow"] == b"POST"

    run(scenario)


# -- callbacks ----------------------------------------------------------------------------


def test_coroutine_callbacks_run_and_a_slow_one_holds_up_neither_the_answer_nor_the_others() -> None:
    async def scenario() -> None:
        registry = Registry(URL, "memory://", SECRET)
        release = asyncio.Event()
        seen: list[str] = []

        async def slow(message: Message) -> None:
            seen.append("slow began")
            await release.wait()
            seen.append("slow ended")

        async def quick(message: Message) -> None:
            await asyncio.sleep(0)
            seen.append("quick")

        registry.register(A42, slow)
        registry.register(A42, quick)
        registry.register(A42, lambda message: seen.append("plain"))
        headers, body = signed("go")
        done = await call(WebhookASGI(registry), http_scope(headers=headers), Exchange(*body_messages(body)))
        # Answered with every callback counted, before any coroutine has run a step.
        assert json.loads(done.body) == {"status": "ok", "notified": 3}
        assert seen == ["plain"]
        for _ in range(5):
            await asyncio.sleep(0)
        assert sorted(seen) == ["plain", "quick", "slow began"]  # the slow one waits; the others are done
        release.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert seen[-1] == "slow ended"

    run(scenario)


# -- lifespan, WebSockets, other scopes -----------------------------------------------------------


def test_served_as_the_root_app_it_starts_the_registry_and_stops_it_in_the_lifespan() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        registry = Registry(URL, store, SECRET)
        registry.register(A42, print)
        assert store.lookup({T42}) == {}  # not started: the store has not heard of it
        exchange = Exchange({"type": "lifespan.startup"})
        lifespan = asyncio.ensure_future(
            WebhookASGI(registry)({"type": "lifespan"}, exchange.receive, exchange.send)
        )
        while "lifespan.startup.complete" not in exchange.events:
            await asyncio.sleep(0)
        await registry.register(A42, repr)  # done once the store writes queued before it are
        assert store.lookup({T42}) == {URL: frozenset({T42})}
        exchange.incoming.put_nowait({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 10)
        assert exchange.events[-1] == "lifespan.shutdown.complete"
        assert store.lookup({T42}) == {}

    run(scenario)


def test_a_lifespan_startup_with_a_stopped_registry_fails_saying_why() -> None:
    async def scenario() -> None:
        registry = Registry(URL, "memory://", SECRET)
        await registry.stop()
        exchange = Exchange({"type": "lifespan.startup"})
        await call(WebhookASGI(registry), {"type": "lifespan"}, exchange)
        assert exchange.sent[0]["type"] == "lifespan.startup.failed"
        assert "make a new Registry" in exchange.sent[0]["message"]

    run(scenario)


def test_websockets_are_closed_unaccepted_and_an_unknown_scope_raises() -> None:
    async def scenario() -> None:
        app = WebhookASGI(Registry(URL, "memory://", SECRET))
        exchange = Exchange({"type": "websocket.connect"})
        await call(app, {"type": "websocket", "path": "/skyhooks", "headers": []}, exchange)
        assert exchange.sent == [{"type": "websocket.close", "code": 1008}]
        with pytest.raises(ValueError, match="not 'webtransport'"):
            await call(app, {"type": "webtransport"}, Exchange())

    run(scenario)
