from __future__ import annotations

import pytest

ALL_STORES = ["memory", "sqlite", "mongodb", "redis", "redis-cluster"]


class FakeClock:
    """A settable clock, so expiry is tested without sleeping (the stores take ``clock=``)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_name" in metafunc.fixturenames:
        names = metafunc.config.getoption("--store") or ALL_STORES
        metafunc.parametrize("store_name", names)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store_url(request, store_name, tmp_path):
    if store_name == "memory":
        return "memory://"
    if store_name == "sqlite":
        return f"sqlite:///{tmp_path / 'hooks.db'}"
    if store_name == "redis":
        return request.getfixturevalue("redis_url")
    if store_name == "redis-cluster":
        return request.getfixturevalue("redis_cluster_url")
    return request.getfixturevalue("mongodb_url")


@pytest.fixture
def store(store_name, store_url, clock):
    if store_name == "memory":
        from skyhooks.core.stores.memory import MemoryStore

        made = MemoryStore(clock=clock)
    elif store_name == "sqlite":
        from skyhooks.core.stores.sqlite import SQLiteStore

        made = SQLiteStore(store_url[len("sqlite:///") :], clock=clock)
    elif store_name in ("redis", "redis-cluster"):
        from skyhooks.core.stores.redis import RedisStore

        made = RedisStore(store_url, clock=clock)
    else:
        from skyhooks.core.stores.mongodb import MongoStore

        made = MongoStore(store_url, clock=clock)
    yield made
    made.close()
