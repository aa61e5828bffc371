"""The ``skyhooks`` command, run as a real process against a real SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skyhooks import Topic, generate_secret, open_store
from tests.support.receiver import Receiver

SECRET = generate_secret()


def skyhooks(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "SKYHOOKS_SECRET"}
    return subprocess.run(
        [sys.executable, "-m", "skyhooks", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **(env or {})},
    )


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/hooks.db"


@pytest.fixture
def store(store_url: str):
    opened = open_store(store_url)
    yield opened
    opened.close()


def test_listeners_table_and_json(store, store_url: str) -> None:
    store.add("http://127.0.0.1:8001/skyhooks", {Topic("account_id", "42"), Topic("user_id", "7")}, 90)
    store.add("http://127.0.0.1:8002/skyhooks", {Topic("account_id", "7")}, 60)

    result = skyhooks("listeners", "--store", store_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["URL", "TOPICS", "EXPIRES", "IN"]
    assert lines[1].split()[:3] == ["http://127.0.0.1:8001/skyhooks", "account_id=42", "user_id=7"]
    assert lines[2].split()[:2] == ["http://127.0.0.1:8002/skyhooks", "account_id=7"]
    assert lines[1].index("account_id") == lines[2].index("account_id")  # aligned columns
    assert 85 <= int(lines[1].split()[-1].rstrip("s")) <= 90

    result = skyhooks("listeners", "--store", store_url, "--key", "account_id=42", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(row["url"], row["topic"]) for row in rows] == [
        ("http://127.0.0.1:8001/skyhooks", "account_id=42")
    ]
    assert 85 <= rows[0]["expires_in"] <= 90


def test_the_store_may_come_from_the_environment(store, store_url: str) -> None:
    store.add("http://127.0.0.1:8001/skyhooks", {Topic("account_id", "42")}, 90)
    result = skyhooks("listeners", "--json", env={"SKYHOOKS_STORE": store_url})
    assert [row["topic"] for row in json.loads(result.stdout)] == ["account_id=42"], result.stderr
    assert skyhooks("listeners", "--store", store_url, env={"SKYHOOKS_STORE": "mongo://x"}).returncode == 0
    missing = skyhooks("purge", env={"SKYHOOKS_STORE": ""})  # (set but empty: as if unset)
    assert missing.returncode == 2 and "--store" in missing.stderr


def test_listeners_when_nobody_listens(store_url: str) -> None:
    result = skyhooks("listeners", "--store", store_url)
    assert (result.returncode, result.stdout.strip()) == (0, "nobody is listening")
    assert json.loads(skyhooks("listeners", "--store", store_url, "--json").stdout) == []


def test_notify_delivers_and_reports(store, store_url: str) -> None:
    with Receiver(notified=2) as receiver:
        store.add(receiver.url, {Topic("account_id", "42")}, 90)
        result = skyhooks(
            "notify",
            "--store",
            store_url,
            "--key",
            "account_id=42",
            "--data",
            '{"x": 1}',
            env={"SKYHOOKS_SECRET": SECRET},
        )
        assert result.returncode == 0, result.stderr
        assert "1 delivered, 0 failed, notified 2 callback(s)" in result.stdout
        assert f"delivered  {receiver.url}" in result.stdout
        assert receiver.count == 1
        assert json.loads(receiver.requests[0]["body"]) == {"keys": {"account_id": "42"}, "data": {"x": 1}}

        result = skyhooks(
            "notify",
            "--store",
            store_url,
            "--secret",
            SECRET,
            "--key",
            "account_id=42",
            "--data",
            "[1, 2]",
            "--json",
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert (report["delivered"], report["failed"], report["notified"]) == ([receiver.url], {}, 2)
        assert receiver.count == 2


def test_notify_exits_1_when_a_url_fails(store, store_url: str) -> None:
    with Receiver() as receiver:
        dead = receiver.url  # a port that refuses once the receiver is closed
    store.add(dead, {Topic("account_id", "42")}, 90)
    result = skyhooks(
        "notify", "--store", store_url, "--secret", SECRET, "--key", "account_id=42", "--data", "{}", "--json"
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert list(report["failed"]) == [dead] and report["pruned"] == [dead]


def test_purge_counts_expired(store, store_url: str) -> None:
    store.add("http://127.0.0.1:8001/skyhooks", {Topic("account_id", "42"), Topic("account_id", "7")}, 0.01)
    store.add("http://127.0.0.1:8002/skyhooks", {Topic("account_id", "42")}, 90)
    time.sleep(0.05)
    result = skyhooks("purge", "--store", store_url)
    assert (result.returncode, result.stdout.strip()) == (0, "purged 2 expired subscriptions")
    assert [sub.url for sub in store.subscriptions()] == ["http://127.0.0.1:8002/skyhooks"]
    assert skyhooks("purge", "--store", store_url).stdout.strip() == "purged 0 expired subscriptions"


NOTIFY = ("notify", "--secret", SECRET, "--data", "{}")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("listeners", "--store", "mongo://localhost/db"), "Did you mean 'mongodb'?"),
        (("listeners", "--store", "sqlite:////nonexistent/folder/hooks.db"), "unable to open"),
        (("purge", "--store", "sqlite:////nonexistent/folder/hooks.db"), "unable to open"),
        (("listeners", "--store", "{store}", "--key", "account_id"), "is not NAME=VALUE"),
        ((*NOTIFY, "--store", "{store}", "--key", "bad name=1"), "key name 'bad name' is invalid"),
        ((*NOTIFY, "--store", "{store}", "--key", "a=1", "--key", "a=2"), "given twice"),
        (("notify", "--store", "{store}", "--secret", SECRET, "--key", "a=1", "--data", "{x"), "not JSON"),
        (("notify", "--store", "{store}", "--key", "a=1", "--data", "{}"), "no secret"),
        (("demo", "--ports", "1,2"), "must be four ports"),
        (("demo", "--ports", "1,2,3,4,5"), "must be four ports"),
    ],
)
def test_errors_are_one_line(store_url: str, args: tuple[str, ...], says: str) -> None:
    result = skyhooks(*(arg.replace("{store}", store_url) for arg in args))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("skyhooks: error: ")
    assert says in result.stderr
    assert result.stdout == ""


def test_demo_ports_are_four_and_three_still_work() -> None:
    from skyhooks.cli import parse_ports

    assert parse_ports("8001,8002,8003,8004") == [8001, 8002, 8003, 8004]
    # As before the demo had its Starlette server: that server then takes a free port.
    assert parse_ports("9001,9002,9003") == [9001, 9002, 9003, 0]
    for bad in ("1,2", "1,2,3,4,5", "1,2,3,65536", "a,b,c,d"):
        with pytest.raises(ValueError, match="--ports"):
            parse_ports(bad)


def test_usage_errors_are_argparses() -> None:
    result = skyhooks("notify", "--store", "memory://")
    assert result.returncode == 2 and "usage: skyhooks notify" in result.stderr
    assert "Traceback" not in result.stderr
