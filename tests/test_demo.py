"""``skyhooks demo`` end to end: real processes, real sockets, one SQLite store.

Three servers (Tornado, gevent, Twisted); SSE streams opened with raw sockets;
a task run from one server reaches every stream of its account on all three,
and no stream of another account; Ctrl-C (SIGINT) leaves no process and no
subscription behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from skyhooks import Topic, open_store

pytestmark = pytest.mark.slow
pytest.importorskip("tornado")
pytest.importorskip("gevent")
pytest.importorskip("twisted")

DEADLINE = 30.0


class EventStream:
    """A Server-Sent Events stream read over a raw socket by a thread."""

    def __init__(self, page: str, account: str) -> None:
        parts = urlsplit(page)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=DEADLINE)
        self.sock.sendall(
            f"GET /events?account_id={account} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        self.events: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.buffer = b""
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.buffer += chunk
                if b"event: ready" in self.buffer:
                    self.ready.set()
                # Chunked framing lines never start with "data: ", so this is enough.
                self.events = [json.loads(m) for m in re.findall(rb"^data: (\{.+\})$", self.buffer, re.M)]
        except OSError:
            pass

    def data(self, kind: str) -> list[dict[str, Any]]:
        return [event["data"] for event in self.events if event["data"].get("kind") == kind]

    def close(self) -> None:
        self.sock.close()


def descendants(pid: int) -> set[int]:
    """Every live process below *pid* (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition: Any, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], str]]:
    store = f"sqlite:///{tmp_path}/hooks.db"
    log = (tmp_path / "stderr").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "skyhooks", "demo", "--ports", "0,0,0", "--store", store],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    pages: dict[str, str] = {}
    assert process.stdout is not None
    deadline = time.monotonic() + DEADLINE
    while len(pages) < 3 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if match := re.match(r"\s+(tornado|gevent|twisted)\s+(http://\S+)", line):
            pages[match[1]] = match[2]
    try:
        assert len(pages) == 3, f"demo did not print three URLs: {(tmp_path / 'stderr').read_text()}"
        yield process, pages, store
    finally:
        if process.poll() is None:
            for pid in descendants(process.pid):
                os.kill(pid, signal.SIGKILL)
            process.kill()
        process.wait()
        log.close()


def test_demo_fans_out_per_account_and_stops_cleanly(demo: Any) -> None:
    process, pages, store_url = demo
    streams = {name: EventStream(page, "42") for name, page in pages.items()}
    other = EventStream(pages["gevent"], "7")
    for stream in [*streams.values(), other]:
        assert stream.ready.wait(DEADLINE), f"no ready event: {stream.buffer!r}"
    store = open_store(store_url)
    try:
        listed = {(sub.url, str(sub.topic)) for sub in store.subscriptions()}
        assert {topic for _, topic in listed} == {"account_id=42", "account_id=7"}
        assert len({url for url, _ in listed}) == 3

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
            # Each report names a message this stream got and counts all three pages' callbacks.
            ids = {event["id"] for event in stream.events}
            assert all(d["ref"] in ids and d["notified"] == 3 for d in stream.data("report")), name
        assert other.events == []

        # A browser that leaves takes its subscription with it, even under WSGI (gevent),
        # where only a failing keep-alive write reveals it.
        other.close()
        wait_until(
            lambda: Topic("account_id", "7") not in {sub.topic for sub in store.subscriptions()},
            "the closed stream's subscription to go",
            timeout=10,
        )

        children = descendants(process.pid)
        assert len(children) >= 3
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert time.monotonic() - started < 20
        assert [pid for pid in children if alive(pid)] == []
        assert store.subscriptions() == []
    finally:
        store.close()
        for stream in streams.values():
            stream.close()
