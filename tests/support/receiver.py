"""A scripted HTTP receiver on 127.0.0.1, for publisher tests.

A real socket server (http.server in a thread) whose answers are scripted per
request: ``Receiver(script=[503, 200])`` answers 503 once, then 200 for ever.
``"sleep:0.5"`` answers 200 after half a second; ``"hang"`` accepts the request
and never answers (until the receiver closes).
It records every request it got: headers, body and the client's address ("peer").
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(
        self, script: list[Any] | None = None, notified: int = 1, headers: dict[str, str] | None = None
    ):
        self.script = list(script or [200])
        self.notified = notified
        self.extra_headers = headers or {}
        self.requests: list[dict[str, Any]] = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        {"headers": dict(self.headers), "body": body, "peer": self.client_address}
                    )
                    step = receiver.script.pop(0) if len(receiver.script) > 1 else receiver.script[0]
                if step == "hang":
                    receiver._release.wait(30)
                    self.close_connection = True
                    return
                if isinstance(step, str) and step.startswith("sleep:"):
                    time.sleep(float(step[6:]))
                    step = 200
                status = int(step)
                payload = json.dumps({"status": "ok", "notified": receiver.notified}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        """Let every ``"hang"`` request go (its connection closes unanswered)."""
        self._release.set()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)


_held: list[socket.socket] = []


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused).

    The port stays bound (but not listening) for the rest of the test run, so
    no server started meanwhile can take it and answer instead.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
