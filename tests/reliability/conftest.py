from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.recording import RecordingInstance

FRAMEWORKS = ("tornado", "gevent", "twisted")


@pytest.fixture
def measure(request) -> Iterator[Any]:
    """``measure(**numbers)``: one JSON line per call, printed and appended to
    ``$SKYHOOKS_RELIABILITY_REPORT`` if set, tagged with the test's name."""

    def record(**numbers: Any) -> None:
        line = json.dumps({"scenario": request.node.name, "time": round(time.time(), 3), **numbers})
        print("RELIABILITY", line)
        path = os.environ.get("SKYHOOKS_RELIABILITY_REPORT")
        if path:
            with open(path, "a") as out:
                out.write(line + "\n")

    yield record


@pytest.fixture
def launch(tmp_path, secret) -> Iterator[Any]:
    """``launch(framework, store, **options)``: a started RecordingInstance, killed at teardown."""
    started: list[RecordingInstance] = []

    def start(framework: str, store: str, **options: Any) -> RecordingInstance:
        instance = RecordingInstance(
            framework, store, options.pop("secret", secret), log_dir=tmp_path, **options
        )
        started.append(instance)
        return instance.start()

    yield start
    for instance in started:
        instance.kill()
