"""What the tests of ``examples/`` share."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType


def load_tasks(path: Path, name: str, broker: str) -> ModuleType:
    """An example's Celery tasks module (*path*) in this process, as the code that queues
    tasks or reads their results would import it, configured for *broker*."""
    os.environ["CELERY_BROKER_URL"] = broker  # read at import, like a deployed app's config
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        del os.environ["CELERY_BROKER_URL"]
