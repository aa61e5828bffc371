"""``examples/fastapi`` end to end, following its README: a real Redis, the Celery worker
(``celery -A tasks worker``) and the FastAPI app under uvicorn (``uvicorn app:app``),
each a process of its own, on one SQLite store. A task's event stream sees every step
and the result, once each and in order, then ends; another task's stream sees nothing;
bad requests get FastAPI's 4xx; Ctrl-C (SIGINT) stops the app and its URL leaves the store.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skyhooks import Topic, open_store
from tests.support.examples import load_tasks
from tests.support.instances import REPO, wait_for
from tests.support.redis import RedisServer, free_port

pytest.importorskip("celery")
pytest.importorskip("redis")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytestmark = pytest.mark.slow

EXAMPLE = REPO / "examples" / "fastapi"
README = (EXAMPLE / "README.md").read_text()
# The README's commands, as this test runs them (the app on a free port instead of 8000).
WORKER = "celery -A tasks worker --pool=solo --loglevel=INFO"
APP = "uvicorn app:app --host 127.0.0.1 --port 8000 --timeout-graceful-shutdown 5"
STEPS = 4
DEADLINE = 60.0


def test_the_readme_names_the_commands_this_test_runs() -> None:
    assert WORKER in README and f"SKYHOOKS_URL=http://127.0.0.1:8000/skyhooks {APP}" in README


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def environment(redis_server: RedisServer, sqlite_url: str, secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "SKYHOOKS_STORE": sqlite_url,
        "SKYHOOKS_SECRET": secret,
        "CELERY_BROKER_URL": redis_server.url(),
        "PYTHONUNBUFFERED": "1",
    }


def start(command: str, env: dict[str, str], log_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    """*command* (a README line: ``celery ...`` or ``uvicorn ...``) as ``python -m``, from the
    example's folder, its output in *log_path*."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", *command.split(), *extra],
            cwd=EXAMPLE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def end(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> int:
    """Stop *process* by its pid: *signum*, then SIGKILL after 20 s."""
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@pytest.fixture
def worker(tmp_path: Path, environment: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    log_path = tmp_path / "celery.log"
    unique = (
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"fastapi-{os.getpid()}@%h",
    )
    process = start(WORKER, environment, log_path, *unique)
    try:
        wait_for(
            lambda: b" ready." in log_path.read_bytes() or process.poll() is not None,
            timeout=DEADLINE,
            what="the celery worker",
        )
        assert process.poll() is None, log_path.read_text()
        yield process
    finally:
        end(process)  # SIGTERM: Celery's warm shutdown


class App:
    """The example app under uvicorn, on a free port."""

    def __init__(self, tmp_path: Path, environment: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/skyhooks"
        self.log_path = tmp_path / "app.log"
        command = APP.replace("--port 8000", f"--port {self.port}")
        self.process = start(command, {**environment, "SKYHOOKS_URL": self.url}, self.log_path)

    def request(self, method: str, path: str) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(body) if kind.startswith("application/json") else body.decode()

    def up(self) -> bool:
        try:
            return self.request("GET", "/")[0] == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def app(tmp_path: Path, environment: dict[str, str]) -> Iterator[App]:
    running = App(tmp_path, environment)
    try:
        wait_for(lambda: running.up() or running.process.poll() is not None, timeout=DEADLINE, what="the app")
        assert running.process.poll() is None, running.log()
        yield running
    finally:
        end(running.process)


class Events:
    """One task's event stream (``GET /tasks/{id}/events``), read line by line by a thread."""

    def __init__(self, app: App, task_id: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=DEADLINE)
        self.connection.request("GET", f"/tasks/{task_id}/events", headers={"Accept": "text/event-stream"})
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("Content-Type", "").startswith("text/event-stream")
        self.lines: list[str] = []
        self.ready, self.ended = threading.Event(), threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while line := self.response.readline():
                self.lines.append(line.decode().rstrip("\n"))
                if self.lines[-1] == "event: ready":
                    self.ready.set()
        except OSError:
            pass
        self.ended.set()  # the server ended the stream (or close() did)

    @property
    def data(self) -> list[Any]:
        """The data of the stream's messages (events without an ``event:`` name), in order."""
        text = "\n".join(self.lines)
        blocks = [block.splitlines() for block in text.split("\n\n")]
        return [
            json.loads(block[-1][len("data: ") :])
            for block in blocks
            if block and block[-1].startswith("data: ") and not any(x.startswith("event:") for x in block)
        ]

    def close(self) -> None:
        if self.connection.sock is not None:  # ends the reader's readline, then the connection
            self.connection.sock.shutdown(socket.SHUT_RDWR)
        self.reader.join(10)
        self.connection.close()


def listed(store_url: str) -> set[tuple[str, Topic]]:
    store = open_store(store_url)
    try:
        return {(sub.url, sub.topic) for sub in store.subscriptions()}
    finally:
        store.close()


def test_a_task_streams_its_progress_to_the_page(
    worker: subprocess.Popen[bytes], app: App, redis_server: RedisServer, sqlite_url: str
) -> None:
    status, html = app.request("GET", "/")
    assert status == 200 and 'id="run"' in html and "EventSource" in html

    status, created = app.request("POST", "/tasks")
    assert status == 201, created
    task_id = created["task_id"]
    other_id = app.request("POST", "/tasks")[1]["task_id"]
    assert task_id != other_id

    stream, other = Events(app, task_id), Events(app, other_id)
    try:
        for events in (stream, other):
            assert events.ready.wait(DEADLINE), (events.lines, app.log())
        # "ready" means the store lists this app for the task's key.
        subscriptions = listed(sqlite_url)
        assert (app.url, Topic("task_id", task_id)) in subscriptions
        assert (app.url, Topic("task_id", other_id)) in subscriptions

        # Bad requests: FastAPI's validation (422), a second start (409); none starts a task.
        assert app.request("POST", "/tasks/not-a-task-id/start")[0] == 422
        assert app.request("POST", f"/tasks/{task_id}/start?steps=0")[0] == 422
        status, body = app.request("POST", f"/tasks/{task_id}/start?steps={STEPS}")
        assert (status, body) == (202, {"task_id": task_id})
        status, body = app.request("POST", f"/tasks/{task_id}/start")
        assert status == 409 and "started already" in body["detail"]

        assert stream.ended.wait(DEADLINE), (stream.lines, app.log())  # the result ends the stream
        assert [(d["kind"], d.get("step")) for d in stream.data] == [
            *(("progress", step) for step in range(1, STEPS + 1)),
            ("result", None),
        ], stream.lines
        assert all(d.get("of") == STEPS for d in stream.data[:-1])
        assert stream.data[-1]["text"].startswith(f"done: {STEPS} steps")

        # The worker's reports: each message delivered to the app once, one callback run.
        tasks = load_tasks(EXAMPLE / "tasks.py", "skyhooks_fastapi_example_tasks", redis_server.url())
        try:
            outcome = tasks.app.AsyncResult(task_id).get(timeout=DEADLINE)
        finally:
            tasks.app.close()
        assert outcome["task_id"] == task_id and len(outcome["reports"]) == STEPS + 1
        for report in outcome["reports"]:
            assert report["delivered"] == [app.url] and report["failed"] == {}, report
            assert report["notified"] == 1, report

        # The ended stream's callback is gone, and with it the app's subscription to the task.
        wait_for(
            lambda: (app.url, Topic("task_id", task_id)) not in listed(sqlite_url),
            timeout=10,
            what="the finished task's subscription to go",
        )
        assert other.data == [] and not other.ended.is_set()
    finally:
        stream.close()
        other.close()

    # Ctrl-C: uvicorn stops (the open stream bounded by --timeout-graceful-shutdown), and
    # the lifespan's registry.stop() removes the app's URL from the store.
    assert end(app.process, signal.SIGINT) == 0, app.log()
    assert [url for url, _ in listed(sqlite_url) if url == app.url] == []
    assert "Traceback" not in app.log(), app.log()
