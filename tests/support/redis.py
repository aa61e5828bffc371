"""Start and stop a real Redis server (Debian's ``redis-server``) for the Celery tests.

Runs on a free port on 127.0.0.1 with no persistence, in a directory of the
caller's choosing, and is ended by its pid. ``scripts/setup-system`` installs
``redis-server``.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; ``url(db)`` names a database on it."""

    def __init__(self, workdir: Path, binary: str | None = None) -> None:
        self.binary = binary or shutil.which("redis-server")
        self.workdir = workdir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "redis.log"

    def start(self, timeout: float = 15.0) -> RedisServer:
        if self.binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/setup-system")
        # The port is chosen then released before redis binds it; another process
        # could take it in between, so a failed start tries another port.
        for _ in range(3):
            self.port = free_port()
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--dir",
                    str(self.workdir),
                    "--logfile",
                    str(self.log_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ping(timeout):
                return self
            self.stop()
        raise RuntimeError(f"redis-server did not start:\n{self.log()}")

    def _wait_ping(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.ping():
                return True
            time.sleep(0.05)
        return False

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""
