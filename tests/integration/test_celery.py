"""The Celery example end to end: a real Redis, a real Celery worker process,
the blocking ``skyhooks.Publisher`` inside the task, and one instance per
kind (Tornado, gevent, Twisted, WebhookASGI under uvicorn, aiohttp) whose callbacks must each see every
progress step and the result exactly once, and nothing for another account.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skyhooks import open_store
from tests.integration.conftest import FRAMEWORKS
from tests.support.examples import load_tasks
from tests.support.instances import REPO
from tests.support.redis import RedisServer

pytest.importorskip("celery")
pytest.importorskip("redis")
pytestmark = pytest.mark.slow

EXAMPLE = REPO / "examples" / "celery"
STEPS = 4


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def worker(
    tmp_path: Path, redis_server: RedisServer, sqlite_url: str, secret: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A tasks worker --pool=solo``, in its own process, ended by its pid."""
    log_path = tmp_path / "celery.log"
    env = {
        **os.environ,
        "CELERY_BROKER_URL": redis_server.url(),
        "SKYHOOKS_STORE": sqlite_url,
        "SKYHOOKS_SECRET": secret,
        "PYTHONUNBUFFERED": "1",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tasks",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                f"skyhooks-test-{os.getpid()}@%h",
            ],
            cwd=EXAMPLE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the celery worker did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_celery_task_reaches_every_instance_once(
    worker: subprocess.Popen[bytes], redis_server: RedisServer, sqlite_url: str, start_instance: Any
) -> None:
    instances = {framework: start_instance(framework, sqlite_url) for framework in FRAMEWORKS}
    for instance in instances.values():
        instance.register({"account_id": 42}, "acct42")
    # Another account's callback, on an instance that also listens for 42.
    instances["gevent"].register({"account_id": 7}, "acct7")

    tasks = load_tasks(EXAMPLE / "tasks.py", "skyhooks_celery_example", redis_server.url())
    result = tasks.crunch.delay(42, steps=STEPS, interval=0.1)
    try:
        outcome = result.get(timeout=60)
    finally:
        tasks.app.close()
    assert outcome["task"] == result.id
    assert outcome["account_id"] == "42"

    urls = sorted(instance.url for instance in instances.values())
    reports = outcome["reports"]
    assert len(reports) == STEPS + 1
    for report in reports:
        assert report["urls"] == urls, report
        assert report["delivered"] == urls, report
        assert report["failed"] == {} and report["pruned"] == []
        assert report["notified"] == len(FRAMEWORKS), report
    message_ids = [report["message_id"] for report in reports]
    assert len(set(message_ids)) == len(message_ids)

    for framework, instance in instances.items():
        received = instance.received()
        got = received.get("acct42", [])
        # Exactly once each, in order: a duplicate or a gap fails here.
        assert [m["id"] for m in got] == message_ids, (framework, got)
        assert [m["keys"] for m in got] == [{"account_id": 42}] * len(got)
        assert [(m["data"]["kind"], m["data"].get("step")) for m in got] == [
            *(("progress", step) for step in range(1, STEPS + 1)),
            ("result", None),
        ], framework
        assert {m["data"]["task"] for m in got} == {result.id}
        assert got[-1]["data"]["text"].startswith(f"done: {STEPS} steps")
        assert received.get("acct7", []) == [], framework

    # The worker was a client of the store only; the instances are what is listed.
    store = open_store(sqlite_url)
    try:
        assert {sub.url for sub in store.subscriptions()} == set(urls)
    finally:
        store.close()
