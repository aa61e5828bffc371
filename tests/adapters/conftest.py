from __future__ import annotations

import importlib.util

import pytest

from tests.support.instances import Instance

# framework -> the module its instance program needs ("asgi": WebhookASGI under uvicorn)
FRAMEWORKS = {
    "tornado": "tornado",
    "gevent": "gevent",
    "twisted": "twisted",
    "asgi": "uvicorn",
    "aiohttp": "aiohttp",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "framework" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--framework") or list(FRAMEWORKS)
        # A framework that is not installed shows as a skip, never as a silent drop.
        marks = {
            name: ()
            if importlib.util.find_spec(FRAMEWORKS[name])
            else pytest.mark.skip(f"{name} is not installed")
            for name in chosen
        }
        metafunc.parametrize("framework", [pytest.param(name, marks=marks[name]) for name in chosen])


@pytest.fixture
def start_instance(framework, secret, tmp_path):
    """``start_instance(store, ttl=...)`` -> a running Instance of the framework under test."""
    started: list[Instance] = []

    def start(store: str, ttl: float = 90.0, secret_: str | None = None) -> Instance:
        instance = Instance(framework, store, secret_ or secret, ttl=ttl, log_dir=tmp_path).start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.kill()


@pytest.fixture
def instance(start_instance, sqlite_url):
    return start_instance(sqlite_url)
