from __future__ import annotations

import itertools
import shutil

import pytest

from tests.support.mongo import MongoServer, external_uri, fresh_database, mongoeco_python
from tests.support.redis import RedisCluster, RedisServer, have_redis


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store", action="append", default=[], help="store(s) to run store tests against")
    parser.addoption(
        "--framework", action="append", default=[], help="adapter(s) to run the behaviour suite on"
    )


@pytest.fixture(scope="session")
def mongo_server():
    """The session's MongoDB-wire server, or None when SKYHOOKS_MONGODB_URI names a real one."""
    if external_uri("x"):
        yield None
        return
    python = mongoeco_python()
    if python is None:
        pytest.fail(
            "no MongoDB-wire server: run the tests through scripts/test, which builds .venv-mongoeco, "
            "or set SKYHOOKS_MONGODB_URI"
        )
    server = MongoServer(python)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mongodb_url(mongo_server) -> str:
    database = fresh_database()
    return external_uri(database) or mongo_server.url(database)


def _need_redis() -> None:
    if not have_redis():
        pytest.fail("redis-server and redis-cli are not installed: run scripts/setup-system")


@pytest.fixture(scope="session")
def redis_session_server(tmp_path_factory):
    """One ``redis-server`` for the session; tests keep apart by key prefix."""
    _need_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_session_cluster(tmp_path_factory):
    """One three-node Redis Cluster for the session; tests keep apart by key prefix."""
    _need_redis()
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


_redis_prefixes = itertools.count()


def fresh_redis_prefix() -> str:
    """A key prefix no other test of this session uses."""
    return f"t{next(_redis_prefixes)}"


@pytest.fixture
def redis_url(redis_session_server) -> str:
    """``redis://`` on the session's server, with a prefix of this test's own."""
    return f"{redis_session_server.url(0)}?prefix={fresh_redis_prefix()}"


@pytest.fixture
def redis_cluster_url(redis_session_cluster) -> str:
    """``redis+cluster://`` on the session's cluster, with a prefix of this test's own."""
    return f"{redis_session_cluster.url()}?prefix={fresh_redis_prefix()}"


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'hooks.db'}"


@pytest.fixture
def sqlite_store(sqlite_url):
    """A SQLite store in a fresh file, closed afterwards."""
    from skyhooks import open_store

    store = open_store(sqlite_url)
    yield store
    store.close()


@pytest.fixture
def secret() -> str:
    from skyhooks import generate_secret

    return generate_secret()


def have(command: str) -> bool:
    return shutil.which(command) is not None
