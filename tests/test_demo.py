"""``skyhooks demo`` end to end: real processes, real sockets, one SQLite store.

Four servers (Tornado, gevent, Twisted, Starlette under uvicorn); SSE streams
opened with raw sockets; a task run from one server reaches every stream of its
account on all four, and no stream of another account; a stream that closes
takes its subscription with it; Ctrl-C (SIGINT) leaves no process and no
subscription behind.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from skyhooks import Topic, open_store
from tests.support.demo import DEADLINE, Demo, EventStream, alive, children, running_demo

pytestmark = pytest.mark.slow
pytest.importorskip("tornado")
pytest.importorskip("gevent")
pytest.importorskip("twisted")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


def wait_until(condition: Any, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    with running_demo(tmp_path) as demo:
        yield demo


def test_demo_fans_out_per_account_and_stops_cleanly(demo: Demo) -> None:
    process, pages, store_url = demo.process, demo.pages, demo.store
    streams = {name: EventStream(page, "42") for name, page in pages.items()}
    # Account 7 on the two servers that notice a browser leaving in opposite ways: WSGI
    # (gevent) only when a keep-alive write fails, Starlette from the server's disconnect event.
    others = [EventStream(pages["gevent"], "7"), EventStream(pages["asgi"], "7")]
    for stream in [*streams.values(), *others]:
        assert stream.ready.wait(DEADLINE), f"no ready event: {stream.buffer!r}"
    store = open_store(store_url)
    try:
        listed = {(sub.url, str(sub.topic)) for sub in store.subscriptions()}
        assert {topic for _, topic in listed} == {"account_id=42", "account_id=7"}
        assert len({url for url, _ in listed}) == len(pages) == 4

        page = pages["twisted"]
        parts = urlsplit(page)
        with socket.create_connection((parts.hostname, parts.port), timeout=DEADLINE) as sock:
            sock.sendall(
                f"POST /run-task?account_id=42 HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 202"), answer
        task = json.loads(answer.split(b"\r\n\r\n", 1)[1])["task"]

        for name, stream in streams.items():
            wait_until(lambda s=stream: len(s.data("report")) == 6, f"every report on {name}")
            steps = [(d["task"], d["step"]) for d in stream.data("progress")]
            assert steps == [(task, step) for step in range(1, 6)], name
            assert [d["task"] for d in stream.data("result")] == [task], name
            # Each report names a message this stream got and counts all four pages' callbacks.
            ids = {event["id"] for event in stream.events}
            assert all(d["ref"] in ids and d["notified"] == 4 for d in stream.data("report")), name
        assert [other.events for other in others] == [[], []]

        # A browser that leaves takes its subscription with it, even under WSGI (gevent),
        # where only a failing keep-alive write reveals it.
        for other in others:
            other.close()
        wait_until(
            lambda: Topic("account_id", "7") not in {sub.topic for sub in store.subscriptions()},
            "the closed streams' subscriptions to go",
            timeout=10,
        )

        servers = children(process.pid)
        assert len(servers) >= 4
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert time.monotonic() - started < 20
        assert [pid for pid in servers if alive(pid)] == []
        assert store.subscriptions() == []
    finally:
        store.close()
        for stream in streams.values():
            stream.close()
