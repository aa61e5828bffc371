"""skyhooks.asyncio on a plain asyncio loop, no framework: the Registry's hooks (its own
store thread, lazy loop binding, async callbacks) and the Publisher's (no client of its
own, store calls in its pool, successive loops, forks), through
:class:`skyhooks.testing.MemoryTransport`. The promises every publisher keeps are in
``tests/publishers``; what Tornado adds is in ``tests/adapters/test_tornado_specific.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from skyhooks import Message, RetryPolicy, Topic, generate_secret
from skyhooks.asyncio import Publisher, Registry
from skyhooks.core.errors import WouldBlock
from skyhooks.core.stores.memory import MemoryStore
from skyhooks.testing import MemoryTransport
from tests.test_imports import FRAMEWORKS
from tests.test_imports import run as run_blocked

A42 = {"account_id": 42}
T42 = Topic("account_id", "42")
SECRET = generate_secret()
URL = "http://127.0.0.1:9/skyhooks"
FAST = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02, deadline=5, timeout=1)


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(test(), 30))


class ThreadedLookups(MemoryStore):
    """A real memory store whose lookups say they would wait: every one goes to the
    publisher's pool, and names the thread it ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def lookup_nowait(self, topics: Any) -> Any:
        raise WouldBlock("in a thread, please")

    def lookup(self, topics: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        return super().lookup(topics)


async def wired(store: Any) -> tuple[MemoryTransport, list[Message]]:
    """A registry listening for A42 (on this loop) and a transport that delivers to it in memory."""
    registry = Registry(URL, store, SECRET)
    got: list[Message] = []
    registry.register(A42, got.append)
    transport = MemoryTransport()
    transport.route(URL, registry)
    store.add(URL, {T42}, ttl=60)
    return transport, got


# -- Publisher -----------------------------------------------------------------------------


def test_a_publisher_without_aiohttp_names_the_extra() -> None:
    result = run_blocked(
        """
        from skyhooks import ConfigurationError
        from skyhooks.asyncio import Publisher
        try:
            Publisher("memory://", "whsec_" + "A" * 32)
        except ConfigurationError as exc:
            print(exc)
        """,
        {"aiohttp"},
    )
    assert "pip install 'skyhooks[asyncio]' (or pass transport=, an ITransport)" in result.stdout, (
        result.stderr
    )


def test_notify_and_notify_many_deliver_with_store_calls_off_the_loop() -> None:
    store = ThreadedLookups()

    async def scenario() -> None:
        transport, got = await wired(store)
        publisher = Publisher(store, SECRET, transport=transport, retry=FAST)
        report = await publisher.notify(A42, {"n": 1})
        assert (report.delivered, report.notified) == ({URL}, 1)
        reports = await publisher.notify_many([(A42, 2), ({"account_id": 7}, 3), (A42, 4)])
        assert [r.notified for r in reports] == [1, 0, 1]
        assert [m.data for m in got] == [{"n": 1}, 2, 4]
        assert len(transport.sent) == 2  # one POST per notify: the two messages went as one batch
        assert json.loads(transport.sent[1].body)["messages"][1]["data"] == 4
        publisher.close()
        assert transport.closed

    run(scenario)
    assert store.threads and all(name.startswith("skyhooks-publisher") for name in store.threads)


def test_a_failing_url_is_retried_reported_and_pruned_on_the_loop() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        transport, _ = await wired(store)
        dead = "http://127.0.0.1:1/gone"
        store.add(dead, {T42}, ttl=60)
        transport.answer(URL, 503)
        publisher = Publisher(store, SECRET, transport=transport, retry=FAST)
        report = await publisher.notify(A42, None)
        assert report.delivered == {URL}
        assert report.failed[dead].startswith("refused: ")
        assert report.pruned == {dead}
        assert [sent.url for sent in transport.sent].count(URL) == 2  # the 503, then the retry

    run(scenario)


def test_one_publisher_serves_successive_loops() -> None:
    """asyncio.run twice (a test's loop per test, a script's): each run's futures
    and store calls belong to the loop that runs it."""
    store = ThreadedLookups()
    transport, got = asyncio.run(wired(store))
    publisher = Publisher(store, SECRET, transport=transport)

    async def notify(data: str) -> int:
        return (await publisher.notify(A42, data)).notified

    assert asyncio.run(notify("first")) == 1
    assert asyncio.run(notify("second")) == 1
    publisher.close()
    assert [m.data for m in got] == ["first", "second"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_forked_child_runs_its_store_calls() -> None:
    """Used once in the parent, the publisher's pool counts a worker the child does
    not have as idle and would start none: the child's first lookup would wait for ever."""
    store = ThreadedLookups()
    transport, got = asyncio.run(wired(store))
    publisher = Publisher(store, SECRET, transport=transport)

    def notify(data: str) -> int:
        async def deliver() -> int:
            return (await asyncio.wait_for(publisher.notify(A42, data), 5)).notified

        return asyncio.run(deliver())

    assert notify("parent") == 1
    fork = multiprocessing.get_context("fork")
    queue = fork.Queue()
    child = fork.Process(target=lambda: queue.put(notify("child")))
    child.start()
    try:
        assert queue.get(timeout=20) == 1
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    assert notify("parent again") == 1
    publisher.close()
    assert [m.data for m in got] == ["parent", "parent again"]  # the child's went to its copy


def test_skyhooks_asyncio_needs_no_framework_client_or_driver() -> None:
    result = run_blocked(
        """
        from skyhooks.asyncio import Publisher, Registry, WebhookASGI
        from skyhooks.testing import MemoryTransport
        Publisher("memory://", "whsec_" + "A" * 32, transport=MemoryTransport()).close()
        WebhookASGI(Registry("http://127.0.0.1:9/skyhooks", "memory://", "whsec_" + "A" * 32))
        print("ok")
        """,
        FRAMEWORKS | {"urllib3", "aiohttp", "uvicorn"},
    )
    assert result.stdout.strip() == "ok", result.stderr


# -- Registry ------------------------------------------------------------------------------


class GatedStore(MemoryStore):
    """A real memory store whose writes wait until the test opens the gate (from the
    loop), and note the thread they ran on: a write run on the loop would wait for ever."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.threads: list[str] = []

    def renew(self, url: str, topics: Any, ttl: float) -> None:
        self.threads.append(threading.current_thread().name)
        assert self.gate.wait(10), "the loop did not run while the store was busy"
        super().renew(url, topics, ttl)


def test_registry_built_before_the_loop_binds_to_the_loop_that_runs_it() -> None:
    store = GatedStore()
    registry = Registry(URL, store, SECRET)  # no loop runs yet
    got: list[Message] = []

    async def scenario() -> None:
        registry.start()  # the store's write begins, in a thread, and waits for the gate
        registering = asyncio.ensure_future(registry.register(A42, got.append))
        await asyncio.sleep(0)
        assert not registering.done()  # the loop runs on while the store is busy
        store.gate.set()
        await registering
        assert store.lookup({T42}) == {URL: frozenset({T42})}
        assert await registry.stop() is True

    run(scenario)
    assert store.threads and all(name.startswith("skyhooks-registry") for name in store.threads)


def test_the_store_thread_ends_when_the_stop_completes() -> None:
    """Each registry has a store thread of its own: a process that makes and stops many
    (a test suite, an app reloading) must not keep one per registry for ever."""
    store = GatedStore()
    store.gate.set()
    registry = Registry(URL, store, SECRET)

    async def scenario() -> None:
        registry.start()
        await registry.register(A42, print)
        (worker,) = [t for t in threading.enumerate() if t.name == store.threads[-1]]
        assert worker.is_alive()
        assert await registry.stop() is True
        worker.join(5)
        assert not worker.is_alive()
        assert await registry.stop() is True  # stopped already: nothing more to run
        await registry.unregister(A42, print)  # local only, once stopped

    run(scenario)


def test_a_busy_default_executor_does_not_starve_store_calls() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(2))
        blockers = [loop.run_in_executor(None, time.sleep, 1) for _ in range(4)]  # 2 s of queue
        registry = Registry(URL, "memory://", SECRET)
        registry.start()
        started = time.monotonic()
        await registry.register(A42, print)
        assert time.monotonic() - started < 1
        await registry.stop()
        await asyncio.gather(*blockers)

    run(scenario)


def test_async_callbacks_run_and_their_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    finished = asyncio.Event()

    async def fine(message: Message) -> None:
        await asyncio.sleep(0)
        seen.append(message.id)

    async def failing(message: Message) -> None:
        await asyncio.sleep(0)
        finished.set()
        raise RuntimeError("async callback fails on purpose")

    async def scenario() -> None:
        registry = Registry(URL, "memory://", SECRET)
        registry.register(A42, fine)
        registry.register(A42, failing)
        assert registry.dispatch(Message(keys=A42, data=None, id="msg_1")) == 2
        await finished.wait()
        for _ in range(3):  # the tasks' done callbacks run on the next turns of the loop
            await asyncio.sleep(0)
        assert seen == ["msg_1"]
        assert not registry._tasks  # finished tasks are let go

    with caplog.at_level(logging.ERROR, logger="skyhooks.asyncio"):
        run(scenario)
    assert any("async callback fails on purpose" in str(r.exc_info) for r in caplog.records)


def test_register_outside_a_running_loop_says_so() -> None:
    registry = Registry(URL, "memory://", SECRET)
    with pytest.raises(RuntimeError, match="no running event loop"):
        registry.register(A42, print)
