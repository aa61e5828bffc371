"""The ``skyhooks`` command on Redis and Redis Cluster, run as a real process
against real servers: ``listeners``, ``purge``, ``demo``, and one-line errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("redis", reason="the Redis store needs redis-py: pip install 'skyhooks[redis]'")

from skyhooks import Topic
from skyhooks.core.stores.redis import RedisStore
from tests.support.demo import DEADLINE, EventStream, command_lines, running_demo
from tests.support.redis import RedisServer, free_port
from tests.test_cli import skyhooks

pytestmark = pytest.mark.redis

URL1 = "http://127.0.0.1:8001/skyhooks"
URL2 = "http://127.0.0.1:8002/skyhooks"
PASSWORD = "cli-s3cret"


@pytest.fixture(params=["redis", "redis-cluster"])
def store_url(request) -> str:
    return request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")


def test_listeners(store_url: str) -> None:
    store = RedisStore(store_url)
    try:
        store.add(URL1, {Topic("account_id", "42"), Topic("user_id", "7")}, 90)
        store.add(URL2, {Topic("account_id", "7")}, 60)
    finally:
        store.close()
    result = skyhooks("listeners", "--store", store_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["URL", "TOPICS", "EXPIRES", "IN"]
    assert lines[1].split()[:3] == [URL1, "account_id=42", "user_id=7"]
    assert lines[2].split()[:2] == [URL2, "account_id=7"]
    result = skyhooks("listeners", "--store", store_url, "--key", "account_id=7", "--json")
    assert result.returncode == 0, result.stderr
    assert [(row["url"], row["topic"]) for row in json.loads(result.stdout)] == [(URL2, "account_id=7")]


def test_purge(store_url: str) -> None:
    # Written as if 100 s ago: already expired for the command, which reads the real clock.
    past = RedisStore(store_url, clock=lambda: time.time() - 100)
    now = RedisStore(store_url)
    try:
        past.add(URL1, {Topic("account_id", "42"), Topic("account_id", "7")}, 10)
        now.add(URL2, {Topic("account_id", "42")}, 90)
        result = skyhooks("purge", "--store", store_url)
        assert (result.returncode, result.stdout.strip()) == (0, "purged 2 expired subscriptions"), (
            result.stderr
        )
        assert [sub.url for sub in now.subscriptions()] == [URL2]
        assert skyhooks("purge", "--store", store_url).stdout.strip() == "purged 0 expired subscriptions"
    finally:
        past.close()
        now.close()


@pytest.fixture
def locked_redis(tmp_path: Path):
    server = RedisServer(tmp_path, extra_args=["--requirepass", PASSWORD]).start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("command", "url", "says"),
    [
        ("listeners", "redis://127.0.0.1:{port}/abc", "the database must be a number"),
        ("purge", "redis://127.0.0.1:{port}/0?colour=blue", "unknown option(s) colour"),
        ("listeners", "redis://:{password}@127.0.0.1:{free}/0", "Connection refused"),
        ("purge", "redis+cluster://127.0.0.1:{free}", "Connection refused"),
        ("listeners", "redis://:wrong-{password}@127.0.0.1:{port}/0", "check the user and password"),
        ("purge", "redis://127.0.0.1:{port}/0", "check the user and password"),
        ("listeners", "redis+cluster://:{password}@127.0.0.1:{port}", "not a Redis Cluster node"),
        ("demo", "redis://:{password}@127.0.0.1:{free}/0", "Connection refused"),
    ],
)
def test_errors_are_one_line(locked_redis: RedisServer, command: str, url: str, says: str) -> None:
    store = url.format(port=locked_redis.port, free=free_port(), password=PASSWORD)
    result = skyhooks(command, "--store", store)  # (the demo fails before it binds a port)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("skyhooks: error: "), result.stderr
    assert says in result.stderr
    assert PASSWORD not in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_demo_on_redis(tmp_path: Path, store_url: str) -> None:
    pytest.importorskip("tornado")
    pytest.importorskip("gevent")
    pytest.importorskip("twisted")
    with running_demo(tmp_path, store=store_url) as demo:
        streams = [EventStream(page, "42") for page in demo.pages.values()]
        try:
            for stream in streams:
                assert stream.ready.wait(DEADLINE), f"no ready event: {stream.buffer!r}"
            store = RedisStore(store_url)
            try:
                listed = {(sub.url, str(sub.topic)) for sub in store.subscriptions()}
            finally:
                store.close()
            assert listed == {(url, "account_id=42") for url in demo.webhook_urls.values()}
        finally:
            for stream in streams:
                stream.close()
    # Leaving running_demo stopped it with SIGINT and asserted exit status 0, which
    # the demo gives only when none of its servers is left in the store.


@pytest.mark.slow
def test_the_demo_keeps_the_store_password_and_secret_private(
    tmp_path: Path, locked_redis: RedisServer
) -> None:
    pytest.importorskip("tornado")
    pytest.importorskip("gevent")
    pytest.importorskip("twisted")
    store = f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/0"
    with running_demo(tmp_path, store=store) as demo:
        assert demo.banner.endswith(f"sharing redis://:***@127.0.0.1:{locked_redis.port}/0"), demo.banner
        servers = [line for line in command_lines(demo.process.pid) if "skyhooks.demo." in line]
        assert len(servers) == 4, servers
        # Every local user can read a command line; only the user, a process's environment.
        assert not [line for line in servers if PASSWORD in line or demo.secret in line], servers
