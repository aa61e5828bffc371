"""Fixtures the integration tests share: instance programs ended by pid."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.instances import Instance

FRAMEWORKS = ("tornado", "gevent", "twisted", "asgi", "aiohttp")  # asgi: WebhookASGI under uvicorn


@pytest.fixture
def start_instance(tmp_path: Path, secret: str) -> Iterator[Callable[..., Instance]]:
    """``start_instance(framework, store, ttl=90)``: a started instance, killed at teardown."""
    started: list[Instance] = []

    def start(framework: str, store: str, ttl: float = 90.0) -> Instance:
        instance = Instance(framework, store, secret, ttl=ttl, log_dir=tmp_path)
        started.append(instance)
        return instance.start()

    yield start
    for instance in started:
        instance.kill()
