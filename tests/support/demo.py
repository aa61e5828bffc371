"""Run ``skyhooks demo`` for a test: on free ports, over a store and with a secret
the test names."""

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEADLINE = 30.0
#: The demo's servers, as it names them (asgi: Starlette under uvicorn).
FRAMEWORKS = ("tornado", "gevent", "twisted", "asgi")


@dataclass
class Demo:
    process: subprocess.Popen[str]
    pages: dict[str, str]  # framework -> page URL ("http://127.0.0.1:PORT/")
    store: str
    log_path: Path
    secret: str
    banner: str  # the demo's first line: "skyhooks demo: 4 servers sharing <store>"

    @property
    def webhook_urls(self) -> dict[str, str]:
        return {framework: page + "skyhooks" for framework, page in self.pages.items()}

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def command_lines(pid: int) -> list[str]:
    """The command line of every live process below *pid*, as one string each."""
    lines = []
    for child in children(pid):
        try:
            lines.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue  # ended meanwhile
    return lines


def children(pid: int) -> set[int]:
    """Every live process below *pid* (from /proc)."""
    by_parent: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            by_parent.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


@contextmanager
def running_demo(tmp_path: Path, store: str | None = None) -> Iterator[Demo]:
    """``skyhooks demo --ports 0,0,0,0 --store sqlite:///<tmp>/hooks.db --secret S`` (or *store*),
    ended (by pid) on exit."""
    from skyhooks import generate_secret

    store = store or f"sqlite:///{tmp_path}/hooks.db"
    secret = generate_secret()
    log_path = tmp_path / "demo.stderr"
    log = log_path.open("w")
    ports = ",".join("0" * len(FRAMEWORKS))
    process = subprocess.Popen(
        [sys.executable, "-m", "skyhooks", "demo", "--ports", ports, "--store", store, "--secret", secret],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        pages: dict[str, str] = {}
        banner = ""
        assert process.stdout is not None
        deadline = time.monotonic() + DEADLINE
        while len(pages) < len(FRAMEWORKS) and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if match := re.match(r"\s+(tornado|gevent|twisted|asgi)\s+(http://\S+)", line):
                pages[match[1]] = match[2]
            elif line.startswith("skyhooks demo:"):
                banner = line.strip()
        assert sorted(pages) == sorted(FRAMEWORKS), f"the demo printed {pages}:\n{log_path.read_text()}"
        yield Demo(process, pages, store, log_path, secret, banner)
        # A clean stop (SIGINT, as Ctrl-C) is part of every run.
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=25) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            for pid in children(process.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log.close()


class EventStream:
    """A page's Server-Sent Events stream (``/events?account_id=...``), read by a thread."""

    def __init__(self, page: str, account: str) -> None:
        parts = urlsplit(page)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=DEADLINE)
        self.sock.sendall(
            f"GET /events?account_id={account} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        self.buffer = b""
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.buffer += chunk
                if b"event: ready" in self.buffer:
                    self.ready.set()
        except OSError:
            pass

    @property
    def events(self) -> list[dict[str, Any]]:
        # Chunked framing lines never start with "data: ", so this is enough.
        return [json.loads(m) for m in re.findall(rb"^data: (\{.+\})$", self.buffer, re.M)]

    def data(self, kind: str) -> list[dict[str, Any]]:
        """The data of the events of one kind (progress, result, report)."""
        return [event["data"] for event in self.events if event["data"].get("kind") == kind]

    def close(self) -> None:
        self.sock.close()


def alive(pid: int) -> bool:
    """Whether *pid* is a live (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
