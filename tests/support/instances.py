"""Drive an instance program (``tests/adapters/instances/<framework>.py``) from a test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import urllib3

from skyhooks.core.wire import Signer

REPO = Path(__file__).resolve().parent.parent.parent
_http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))


class Instance:
    """One instance program in its own process, with its control endpoints as methods."""

    def __init__(
        self, framework: str, store: str, secret: str, ttl: float = 90.0, log_dir: Path | None = None
    ):
        self.framework = framework
        self.store = store
        self.secret = secret
        self.ttl = ttl
        self.log_path = (
            log_dir or Path("/tmp")
        ) / f"instance-{framework}-{os.getpid()}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    # -- process -----------------------------------------------------------

    def command(self) -> list[str]:
        """The instance program's command line."""
        return [sys.executable, "-m", f"tests.adapters.instances.{self.framework}", *self.options()]

    def options(self) -> list[str]:
        """The options every instance program takes: its store, secret and TTL, any port."""
        return ["--store", self.store, "--secret", self.secret, "--ttl", str(self.ttl), "--port", "0"]

    def environment(self) -> dict[str, str] | None:
        """Its environment (None: this process's)."""
        return None

    def start(self, timeout: float = 30.0) -> Instance:
        self._log = open(self.log_path, "w")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            self.command(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=self.environment(),
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("LISTENING ") or not line:
                break
        if not line.startswith("LISTENING "):
            self.kill()
            raise RuntimeError(f"{self.framework} instance did not start:\n{self.log()}")
        self.port = int(line.split()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/skyhooks"

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close()

    def _close(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    # -- HTTP -------------------------------------------------------------------

    def post(
        self, body: bytes, headers: dict[str, str], method: str = "POST", path: str = "/skyhooks"
    ) -> tuple[int, Any]:
        response = _http.request(method, f"http://127.0.0.1:{self.port}{path}", body=body, headers=headers)
        try:
            payload = json.loads(response.data)
        except ValueError:
            payload = response.data
        return response.status, payload

    def send(
        self, keys: dict[str, Any], data: Any, secret: str | None = None, **build: Any
    ) -> tuple[int, Any]:
        message = Signer(secret or self.secret).build(keys, data, **build)
        return self.post(message.body, dict(message.headers))

    def control(self, name: str, payload: Any = None, method: str = "POST") -> Any:
        body = json.dumps(payload).encode() if payload is not None else b"{}"
        response = _http.request(
            method,
            f"http://127.0.0.1:{self.port}/control/{name}",
            body=None if method == "GET" else body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status == 200, (name, response.status, response.data, self.log())
        return json.loads(response.data)

    def register(self, keys: dict[str, Any], name: str, kind: str = "sync", wait: bool = True) -> Any:
        return self.control("register", {"keys": keys, "name": name, "kind": kind, "wait": wait})

    def unregister(self, keys: dict[str, Any], name: str, wait: bool = True) -> Any:
        return self.control("unregister", {"keys": keys, "name": name, "wait": wait})

    def received(self) -> dict[str, list[dict[str, Any]]]:
        return self.control("received", method="GET")

    def topics(self) -> list[str]:
        return self.control("topics", method="GET")["topics"]

    def lag(self) -> dict[str, float]:
        return self.control("lag", method="GET")

    def notify(self, keys: dict[str, Any], data: Any, retry: dict[str, Any] | None = None) -> Any:
        return self.control("notify", {"keys": keys, "data": data, "retry": retry})


def wait_for(condition: Any, timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
