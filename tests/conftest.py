from __future__ import annotations

import shutil

import pytest

from tests.support.mongo import MongoServer, external_uri, fresh_database, mongoeco_python


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
