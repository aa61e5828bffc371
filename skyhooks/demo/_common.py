"""What the four demo servers share; framework-free and standard library only.

Each server serves four paths: ``/`` (the page), ``/events?account_id=42`` (an
SSE stream that holds a callback registered for the account while it is open),
``/run-task?account_id=42`` (POST: start a worker process) and ``/skyhooks`` (the
webhook endpoint).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import subprocess
import sys
import threading
import uuid
from importlib import resources
from string import Template
from typing import Any

from ..core.keys import validate_keys
from ..core.values import Message
from . import SECRET_ENV, STORE_ENV

__all__ = [
    "KEEPALIVE_SECONDS",
    "LABELS",
    "SSE_HEADERS",
    "SSE_KEEPALIVE",
    "SSE_OPEN",
    "SSE_READY",
    "Workers",
    "account_keys",
    "announce",
    "json_body",
    "page",
    "parse_args",
    "sse_event",
    "webhook_url",
]

LABELS = {"tornado": "Tornado", "gevent": "gevent", "twisted": "Twisted", "asgi": "Starlette"}

#: How often an idle stream gets a comment line. Besides keeping proxies from
#: timing the stream out, a write is how a WSGI server notices a browser that left.
KEEPALIVE_SECONDS = 2.0

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell nginx-like proxies not to buffer the stream
}
#: Sent at once, so the browser sees the response start before anything happens.
SSE_OPEN = b": connected\n\n"
#: Sent once the account's subscription is in the store: from then on, a
#: publisher anywhere reaches this stream.
SSE_READY = b"event: ready\ndata: {}\n\n"
SSE_KEEPALIVE = b": keep-alive\n\n"


def sse_event(message: Message) -> bytes:
    """One webhook message as an SSE ``data:`` event (JSON on a single line)."""
    payload = json.dumps({"id": message.id, "keys": dict(message.keys), "data": message.data})
    return f"data: {payload}\n\n".encode()


def account_keys(account: str | bytes | None) -> dict[str, str]:
    """The keys for an ``account_id`` query value; ``ValueError`` if missing or invalid."""
    if isinstance(account, bytes):
        account = account.decode("utf-8", "replace")
    if not account:
        raise ValueError("account_id is required, e.g. ?account_id=42")
    return dict(validate_keys({"account_id": account}))  # type: ignore[arg-type]


def parse_args(framework: str) -> argparse.Namespace:
    """The command line every demo server takes."""
    parser = argparse.ArgumentParser(
        prog=f"python -m skyhooks.demo.{framework}_server",
        description=f"The skyhooks demo server on {LABELS[framework]}.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    add_store_and_secret(parser)
    parser.add_argument("--ttl", type=float, default=30.0)
    return parser.parse_args()


def add_store_and_secret(parser: argparse.ArgumentParser) -> None:
    """``--store`` and ``--secret``, by default from ``$SKYHOOKS_STORE`` and ``$SKYHOOKS_SECRET``."""
    for option, env in (("--store", STORE_ENV), ("--secret", SECRET_ENV)):
        default = os.environ.get(env)
        parser.add_argument(option, default=default, required=default is None, help=f"default: ${env}")


def webhook_url(host: str, port: int) -> str:
    """The URL publishers should POST to; a wildcard bind address is not one."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/skyhooks"


def announce(host: str, port: int) -> None:
    """Tell ``skyhooks demo`` (reading stdout) that this server is serving its page."""
    print(f"READY {webhook_url(host, port).removesuffix('skyhooks')}", flush=True)


def page(framework: str) -> bytes:
    """The demo page, naming the framework that serves it."""
    template = resources.files(__package__).joinpath("page.html").read_text("utf-8")
    return Template(template).substitute(framework=html.escape(LABELS[framework])).encode()


class Workers:
    """Starts background jobs as worker processes and ends those still running at shutdown.

    A process rather than a thread, as a Celery worker would be: the publisher
    runs outside the server, knowing only the store and the secret.
    """

    def __init__(self, store: str, secret: str) -> None:
        self._store, self._secret = store, secret
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def start(self, account: str) -> str:
        """Start a job for *account*; return its task id."""
        task = uuid.uuid4().hex[:8]
        command = [
            sys.executable,
            "-m",
            "skyhooks.demo.worker",
            "--account",
            account,
            "--task",
            task,
        ]
        env = {**os.environ, STORE_ENV: self._store, SECRET_ENV: self._secret}
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sys.stderr, env=env)
        with self._lock:
            self._running.add(process)
        # Reaped by a thread (a greenlet under gevent) so no zombie is left, in
        # every framework alike.
        threading.Thread(target=self._reap, args=(process,), daemon=True).start()
        return task

    def _reap(self, process: subprocess.Popen[bytes]) -> None:
        process.wait()
        with self._lock:
            self._running.discard(process)

    def stop(self, timeout: float = 3.0) -> None:
        """Terminate jobs still running (blocking, briefly)."""
        with self._lock:
            running = list(self._running)
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()


def json_body(**fields: Any) -> bytes:
    """A small JSON response body."""
    return json.dumps(fields).encode()
