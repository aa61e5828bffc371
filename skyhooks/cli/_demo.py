"""``skyhooks demo``: four servers (Tornado, gevent, Twisted, and Starlette under uvicorn)
sharing one store.

Each server is a process of its own (``python -m skyhooks.demo.<framework>_server``)
in a session of its own, so a terminal's Ctrl-C reaches only this process, which
then stops the servers in order and checks that they left nothing in the store.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from ..core.errors import ConfigurationError, SkyhooksError
from ..core.keys import Topic
from ..core.stores import open_store
from ..core.urls import shown_url
from ..core.wire import Signer, generate_secret
from ..demo import SECRET_ENV, STORE_ENV

__all__ = ["run_demo"]

FRAMEWORKS = ("tornado", "gevent", "twisted", "asgi")
#: The modules each server needs, checked up front for one clear message.
_NEEDS = ("tornado", "gevent", "twisted", "treq", "starlette", "uvicorn")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass
class _Server:
    framework: str
    process: subprocess.Popen[str]
    page: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)


def run_demo(host: str, ports: list[int], store: str | None, secret: str | None = None) -> int:
    """Run the demo until SIGINT/SIGTERM; return 0 if everything stopped cleanly."""
    missing = [name for name in _NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigurationError(f"the demo needs {', '.join(missing)}: pip install 'skyhooks[demo]'")
    stopping = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stopping.set()) for signum in _SIGNALS}
    folder = None
    if store is None:
        folder = tempfile.mkdtemp(prefix="skyhooks-demo-")
        store = f"sqlite:///{folder}/hooks.db"
    _probe(store)  # a bad or unreachable store fails here, in one line
    secret = secret or generate_secret()
    Signer(secret)  # an unusable secret fails here, in one line
    servers: list[_Server] = []
    try:
        for framework, port in zip(FRAMEWORKS, ports, strict=True):
            servers.append(_start(framework, host, port, store, secret))
        _wait_ready(servers, stopping)
        print(f"skyhooks demo: {len(servers)} servers sharing {shown_url(store)}")
        for server in servers:
            print(f"  {server.framework:<8} {server.page}")
        print('Open the pages, pick an account, press "Run task". Ctrl-C stops everything.', flush=True)
        while not stopping.wait(0.25):
            dead = [server for server in servers if server.process.poll() is not None]
            if dead:
                raise SkyhooksError(f"the {dead[0].framework} server exited ({dead[0].process.returncode})")
        return 0 if _stop(servers, store) else 1
    finally:
        _stop(servers, None)  # a no-op once stopped; otherwise ends whatever was started
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _probe(store: str) -> None:
    """Open *store* and read from it once: network stores (MongoDB, Redis)
    connect lazily, so opening alone would not find one that is down."""
    opened = open_store(store)
    try:
        opened.lookup({Topic("skyhooks", "probe")})
    finally:
        opened.close()


def _start(framework: str, host: str, port: int, store: str, secret: str) -> _Server:
    command = [
        sys.executable,
        "-m",
        f"skyhooks.demo.{framework}_server",
        "--host",
        host,
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, STORE_ENV: store, SECRET_ENV: secret},  # not on the command line: see STORE_ENV
    )
    server = _Server(framework, process)
    threading.Thread(target=_read, args=(server,), daemon=True).start()
    return server


def _read(server: _Server) -> None:
    # Also keeps draining the pipe after READY, so a chatty server never blocks on it.
    assert server.process.stdout is not None
    for line in server.process.stdout:
        if line.startswith("READY ") and not server.ready.is_set():
            server.page = line.split(None, 1)[1].strip()
            server.ready.set()
        else:
            sys.stdout.write(line)


def _wait_ready(servers: list[_Server], stopping: threading.Event) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for server in servers:
        while not server.ready.wait(0.1):
            if server.process.poll() is not None:
                raise SkyhooksError(
                    f"the {server.framework} server failed to start (exit {server.process.returncode}); "
                    "see its output above"
                )
            if stopping.is_set():
                raise KeyboardInterrupt
            if time.monotonic() > deadline:
                raise SkyhooksError(f"the {server.framework} server did not start in {START_TIMEOUT:.0f} s")


def _stop(servers: list[_Server], store: str | None) -> bool:
    """SIGINT every server, wait for them, and (given *store*) check none is still listed."""
    clean = True
    for server in servers:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_TIMEOUT
    for server in servers:
        try:
            code = server.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            server.process.kill()
            code = server.process.wait()
            print(f"skyhooks demo: the {server.framework} server did not stop; killed it", file=sys.stderr)
        clean = clean and code == 0
    if store is not None and servers:
        pages = {server.page.rstrip("/") for server in servers if server.page}
        opened = open_store(store)
        try:
            left = [sub for sub in opened.subscriptions() if sub.url.rsplit("/", 1)[0] in pages]
        finally:
            opened.close()
        if left:
            clean = False
            print(f"skyhooks demo: {len(left)} subscription(s) left in the store", file=sys.stderr)
        else:
            print("skyhooks demo: all servers stopped; none of them is left in the store", flush=True)
    return clean
