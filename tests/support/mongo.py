"""Start and stop the MongoDB-wire server the MongoDB tests use.

With ``SKYHOOKS_MONGODB_URI`` set, tests use that server (a real mongod)
instead, each in a database of its own. Otherwise they run mongoeco (see
``mongoeco_server.py``) under the Python 3.13 interpreter named by
``SKYHOOKS_MONGOECO_PYTHON`` (``scripts/test`` sets it up), on a free port on
127.0.0.1, and end it by its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parent.parent


def mongoeco_python() -> str | None:
    path = os.environ.get("SKYHOOKS_MONGOECO_PYTHON")
    if path:
        return path
    default = REPO / ".venv-mongoeco" / "bin" / "python"
    return str(default) if default.exists() else None


class MongoServer:
    """A mongoeco server process; ``stop()``/``start()`` simulate an outage.

    A restart comes back on the same port, empty (the memory engine), which is
    exactly "the store lost everything".
    """

    def __init__(self, python: str) -> None:
        self.python = python
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        assert self.process is None
        self.process = subprocess.Popen(
            [self.python, str(HERE / "mongoeco_server.py"), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("LISTENING "):
            self.process.kill()
            raise RuntimeError(f"mongoeco server did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def url(self, database: str) -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}?serverSelectionTimeoutMS=2000"


def external_uri(database: str) -> str | None:
    """``SKYHOOKS_MONGODB_URI`` with *database* in place of its path, or None."""
    uri = os.environ.get("SKYHOOKS_MONGODB_URI")
    if not uri:
        return None
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(uri)._replace(path="/" + database))


def fresh_database() -> str:
    return f"skyhooks_test_{uuid.uuid4().hex[:12]}"


if __name__ == "__main__":  # pragma: no cover - manual use
    python = mongoeco_python() or sys.exit("no mongoeco interpreter")
    server = MongoServer(python)
    server.start()
    print(server.url("skyhooks"))
