"""The ``skyhooks`` command against a running ``skyhooks demo`` (four servers,
Tornado, gevent, Twisted and Starlette, on one SQLite store the test names) while
pages' SSE streams are open: ``listeners`` (table and JSON) names the servers' webhook
URLs and topics, ``notify`` reaches the stream (and only with the right secret),
``purge`` removes expired rows and nothing live.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyhooks import Topic, open_store
from tests.support.demo import DEADLINE, Demo, EventStream, running_demo
from tests.support.instances import wait_for

pytestmark = pytest.mark.slow
pytest.importorskip("tornado")
pytest.importorskip("gevent")
pytest.importorskip("twisted")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


def skyhooks(*args: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "SKYHOOKS_SECRET"}
    if secret is not None:
        env["SKYHOOKS_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "skyhooks", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    with running_demo(tmp_path) as running:
        yield running


@pytest.fixture
def streams(demo: Demo) -> Iterator[dict[str, EventStream]]:
    opened = {"42": EventStream(demo.pages["gevent"], "42"), "7": EventStream(demo.pages["twisted"], "7")}
    try:
        for stream in opened.values():
            assert stream.ready.wait(DEADLINE), f"no ready event: {stream.buffer!r}\n{demo.log()}"
        yield opened
    finally:
        for stream in opened.values():
            stream.close()


def test_cli_against_a_running_demo(demo: Demo, streams: dict[str, EventStream]) -> None:
    hooks = demo.webhook_urls
    store = demo.store

    # listeners: a table naming each listening server's URL and topic, not the idle ones.
    result = skyhooks("listeners", "--store", store)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["URL", "TOPICS", "EXPIRES", "IN"]
    rows = sorted(line.split()[:2] for line in lines[1:])
    assert rows == sorted([[hooks["gevent"], "account_id=42"], [hooks["twisted"], "account_id=7"]]), lines
    assert hooks["tornado"] not in result.stdout and hooks["asgi"] not in result.stdout

    result = skyhooks("listeners", "--store", store, "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert sorted((row["url"], row["topic"]) for row in listed) == sorted(
        [(hooks["gevent"], "account_id=42"), (hooks["twisted"], "account_id=7")]
    )
    assert all(0 < row["expires_in"] <= 30 for row in listed), listed  # the demo's ttl is 30 s

    result = skyhooks("listeners", "--store", store, "--key", "account_id=7", "--json")
    assert [row["url"] for row in json.loads(result.stdout)] == [hooks["twisted"]]

    # notify: with the demo's secret it reaches the account's stream, and no other.
    data = {"kind": "progress", "task": "cli", "step": 1, "of": 1}
    result = skyhooks(
        "notify", "--store", store, "--key", "account_id=42", "--data", json.dumps(data), secret=demo.secret
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 delivered, 0 failed, notified 1 callback(s)" in result.stdout
    assert f"delivered  {hooks['gevent']}" in result.stdout
    wait_for(lambda: streams["42"].events, timeout=10, what="the notify to reach the stream")
    [event] = streams["42"].events
    assert event["data"] == data and event["keys"] == {"account_id": "42"}
    assert result.stdout.startswith(f"message {event['id']}:")

    result = skyhooks(
        "notify",
        "--store",
        store,
        "--key",
        "account_id=42",
        "--data",
        '{"n": 2}',
        "--json",
        secret=demo.secret,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["delivered"] == [hooks["gevent"]] and report["notified"] == 1
    wait_for(lambda: len(streams["42"].events) == 2, timeout=10, what="the second notify")
    assert streams["42"].events[1]["id"] == report["message_id"]

    # A wrong secret: refused by the server (401), reported, exit 1, nothing on the stream.
    result = skyhooks(
        "notify", "--store", store, "--key", "account_id=42", "--data", "{}", secret="whsec_" + "A" * 43 + "="
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAILED     {hooks['gevent']}" in result.stdout
    assert "notified 0 callback(s)" in result.stdout
    time.sleep(0.3)
    assert len(streams["42"].events) == 2
    assert streams["7"].events == []

    # purge: an expired row goes; the live subscriptions stay.
    opened = open_store(store)
    try:
        opened.add("http://127.0.0.1:9/skyhooks", [Topic("account_id", "42")], 0.2)
        time.sleep(0.5)
    finally:
        opened.close()
    result = skyhooks("purge", "--store", store)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "purged 1 expired subscription"
    assert skyhooks("purge", "--store", store).stdout.strip() == "purged 0 expired subscriptions"
    listed = json.loads(skyhooks("listeners", "--store", store, "--json").stdout)
    assert {row["url"] for row in listed} == {hooks["gevent"], hooks["twisted"]}
