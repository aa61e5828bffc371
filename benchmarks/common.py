"""What every benchmark needs: server processes, a wrk load, raw receivers.

Every figure is measured against its baseline in the same run and reported as
a ratio, because these machines are shared and noisy. Load comes from ``wrk``
(Debian's package; C, so the load generator is not the bottleneck).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DELIVERY_FIGURES = {"targets", "throughput", "latency", "threads"}
#: What each receive server imports, where that is not its framework's name alone.
SERVER_MODULES = {"asgi": ("uvicorn", "httptools")}


def missing_prerequisites(figures: set[str], frameworks: Sequence[str]) -> list[str]:
    """What a run of *figures* needs that this machine lacks, each with how to get
    it: checked before anything runs, rather than found minutes into a run."""
    programs = (
        (["redis-server"] if figures & (DELIVERY_FIGURES | {"stores", "fleet"}) else [])
        + (["redis-cli"] if figures & {"stores", "fleet"} else [])  # builds the Redis Cluster
        + (["wrk"] if figures & {"receive", "instructions"} else [])
        + (["valgrind", "callgrind_control"] if "instructions" in figures else [])
    )
    modules = {"matplotlib"}  # every run ends by drawing the plots
    if figures & DELIVERY_FIGURES:  # the baselines, and every publisher and receiver
        modules |= {"aiohttp", "redis", "socketio", "tornado", "gevent", "twisted", "uvicorn", "httptools"}
    if figures & {"receive", "instructions", "memory"}:
        modules |= {module for fw in frameworks for module in SERVER_MODULES.get(fw, (fw,))}
    if "stores" in figures:  # the Redis and MongoDB stores
        modules |= {"redis", "pymongo"}
    if "fleet" in figures:  # the Redis store, the receivers, the Socket.IO nodes
        modules |= {"redis", "tornado", "socketio", "aiohttp"}
    # the programs named by their Debian package
    package = {"callgrind_control": "valgrind", "redis-cli": "redis-tools"}
    missing = [
        f"{p} is not installed: apt-get install {package.get(p, p)}"
        for p in programs
        if shutil.which(p) is None
    ]
    missing += [
        f"the Python package {m!r} is not installed: pip install -e '.[all,bench]'"
        for m in sorted(modules)
        if importlib.util.find_spec(m) is None
    ]
    return missing


@dataclass
class Process:
    process: subprocess.Popen[str]
    port: int


@contextlib.contextmanager
def start_process(
    cmd: Sequence[str], env: dict[str, str] | None = None, timeout: float = 30
) -> Iterator[Process]:
    """Run a server program that prints ``LISTENING <port>``; SIGTERM (then kill) it on exit."""
    proc = subprocess.Popen(
        list(cmd),
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or line.startswith("LISTENING "):
                break
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"{cmd} did not start (got {line!r})")
        yield Process(proc, int(line.split()[1]))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def receivers(n: int) -> Iterator[list[str]]:
    """*n* raw receiver processes (``benchmarks/raw_receiver.py``); yields their URLs."""
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(start_process([sys.executable, "-m", "benchmarks.raw_receiver"]))
            for _ in range(n)
        ]
        yield [f"http://127.0.0.1:{p.port}/hook" for p in procs]


def received_count(url: str) -> int:
    """How many POSTs the raw receiver at *url* has answered."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.read())


# -- wrk ---------------------------------------------------------------------------

_WRK_SCRIPT = """
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  -- one request per line: webhook-id, timestamp, signature, body (tab-separated);
  -- read line by line because LuaJIT caps the constants of one chunk at 65536
  reqs = {}
  local i = 0
  for line in io.lines(%(data)s) do
    if i %% %(threads)d == tid then
      local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {["Content-Type"] = "application/json"}
      if id ~= "" then
        headers["webhook-id"] = id
        headers["webhook-timestamp"] = ts
        headers["webhook-signature"] = sig
      end
      reqs[#reqs + 1] = wrk.format("POST", %(path)s, headers, body)
    end
    i = i + 1
  end
  idx = 0
end
function request()
  idx = idx %% #reqs + 1
  return reqs[idx]
end
"""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_requests(path: Path, requests: list[tuple[dict[str, str], bytes]]) -> None:
    with path.open("w") as out:
        for headers, body in requests:
            fields = [
                headers.get(name, "") for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
            ]
            text = body.decode()
            if "\n" in text or "\t" in text:
                raise ValueError("benchmark bodies must be single-line JSON without tabs")
            out.write("\t".join([*fields, text]) + "\n")


@dataclass
class WrkResult:
    requests_per_s: float
    requests: int
    non_2xx: int
    socket_errors: int


def wrk(
    url: str,
    requests: list[tuple[dict[str, str], bytes]],
    duration: float = 8.0,
    connections: int = 32,
    threads: int = 1,
) -> WrkResult:
    """Run wrk against *url*, cycling through *requests* (headers, body); one thread
    by default so the server under test keeps the other core."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
    with tempfile.TemporaryDirectory() as tmp:
        data, script = Path(tmp) / "requests.lua", Path(tmp) / "script.lua"
        _write_requests(data, requests)
        script.write_text(
            _WRK_SCRIPT % {"data": _lua_string(str(data)), "threads": threads, "path": _lua_string(path)}
        )
        # --timeout: gevent's pywsgi serves a connection whose next request is
        # already in while others wait, so under 32 connections a few requests
        # take 1-2 s (its bare handler too); past wrk's default 2 s they would
        # count as socket errors, though every one is answered.
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s"]
        out = subprocess.run(
            [*cmd, "-s", str(script), url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(map(int, errors.groups())) if errors else 0
    return WrkResult(rate, total, int(bad.group(1)) if bad else 0, socket_errors)


def signed_requests(
    secret: str, count: int, keys: dict[str, Any] | None = None, data: Any = None
) -> list[tuple[dict[str, str], bytes]]:
    """*count* distinct signed webhook requests (distinct ids: no duplicate path)."""
    from skyhooks.core.wire import Signer

    signer = Signer(secret)
    data = {"progress": 50, "step": "resizing images"} if data is None else data
    built = [signer.build(keys or {"account_id": 1}, data) for _ in range(count)]
    return [(dict(m.headers), m.body) for m in built]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
