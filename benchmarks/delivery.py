"""Figures 1 and 2: delivered messages/s and notify-to-callback latency, across processes.

Receivers (``benchmarks/servers/<framework>.py``, one process per instance) count
at their callbacks; a sender process (``benchmarks/sender.py``) publishes. Every
framework gets four instances in one SQLite store: instance 0 listens for
``bench=<fw>-1`` and ``bench=<fw>-4``, the others for ``bench=<fw>-4``, so one
set of processes serves both the 1- and the 4-instance runs. The baselines send
the same JSON bytes the same way: (a) raw asyncio HTTP client -> raw asyncio
server (``raw_receiver``), (b) redis-py ``PUBLISH`` -> redis-py subscriber
callbacks, (c) python-socketio's write-only ``RedisManager`` emitter -> Socket.IO
server processes (``baselines/socketio_server.py``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks.common import start_process
from skyhooks import generate_secret

FRAMEWORKS = ["tornado", "gevent", "twisted", "asgi", "aiohttp"]  # asgi: WebhookASGI under uvicorn
PUBLISHERS = ["blocking", "tornado", "gevent", "twisted", "asyncio"]
#: Each receiver's own publisher, measured for latency beside the blocking one.
OWN_PUBLISHER = {"asgi": "asyncio", "aiohttp": "asyncio"}
BASELINES = {
    "raw": "raw HTTP (asyncio client -> asyncio server)",
    "redis": "Redis pub/sub (redis-py, unpipelined)",
    "socketio": "Socket.IO RedisManager emitter",
}
IN_FLIGHT = 16  # concurrent notifies (tasks, greenlets) in async senders
THREADS = IN_FLIGHT  # threads calling the blocking publisher's notify: as many in flight
BATCH_THREADS = 8  # threads calling its notify_many


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """A throw-away redis-server on a free loopback port, no persistence."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Stage:
    """What benchmarks/targets.py and threads.py run against: a Redis server, the
    Socket.IO baseline server on it (channel ``t``), a SQLite store in a temporary
    folder, and :meth:`start` for the other server processes, all stopped together."""

    stack: contextlib.ExitStack
    redis_port: int
    store: str
    socketio_port: int = 0

    def start(self, cmd: list[str]) -> int:
        """Run ``python -m <cmd>`` until the stage ends; its port."""
        return self.stack.enter_context(start_process([sys.executable, "-m", *cmd])).port


@contextlib.contextmanager
def stage(name: str) -> Iterator[Stage]:
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        port = stack.enter_context(redis_server())
        on = Stage(stack, port, f"sqlite:///{tmp}/{name}.db")
        on.socketio_port = on.start(
            ["benchmarks.baselines.socketio_server", "--redis-port", str(port), "--channel", "t"]
        )
        yield on


def run_sender(kind: str, plan: dict[str, Any], timeout: float = 300) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.sender", kind, json.dumps(plan)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"sender {kind} failed: {out.stderr[-2000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50": at(0.50),
        "p99": at(0.99),
        "p999": at(0.999),
        "mean": statistics.fmean(ordered),
        "samples": len(ordered),
    }


@contextlib.contextmanager
def skyhooks_instances(fw: str, store: str, secret: str, n: int) -> Iterator[list[str]]:
    with contextlib.ExitStack() as stack:
        tallies = []
        for i in range(n):
            keys = [{"bench": f"{fw}-1"}, {"bench": f"{fw}-4"}] if i == 0 else [{"bench": f"{fw}-4"}]
            cmd = [
                sys.executable,
                "-m",
                f"benchmarks.servers.{fw}",
                "--store",
                store,
                "--secret",
                secret,
                "--keys",
                json.dumps(keys),
            ]
            tallies.append(f"http://127.0.0.1:{stack.enter_context(start_process(cmd)).port}/tally")
        yield tallies


def targets_for(fw: str, tallies: list[str], counts: tuple[int, ...]) -> list[dict[str, Any]]:
    return [
        {"label": f"{fw}-{n}", "keys": {"bench": f"{fw}-{n}"}, "tallies": tallies[:n], "instances": n}
        for n in counts
        if n <= len(tallies)
    ]


def row(system: str, receiver: str, sender: str, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out = {
        "system": system,
        "receiver": receiver,
        "sender": sender,
        "instances": result["fanout"],
        "rate": result["rate"],
        "sent": result["sent"],
        "delivered": result["delivered"],
        "lost": result["lost"],
        "posts": result.get("posts"),
        **extra,
    }
    if "latencies" in result:
        out["latency_ms"] = percentiles(result["latencies"])
        out["latencies"] = [round(x, 3) for x in result["latencies"]]
    return out


def run(
    quick: bool,
    throughput: bool = True,
    latency: bool = True,
    log: Any = print,
    frameworks: list[str] = FRAMEWORKS,
    publishers: list[str] = PUBLISHERS,
) -> dict[str, Any]:
    seconds = 0.5 if quick else 4.0
    count = 1000 if quick else 5000  # paced messages per latency run (p999 needs >= 1000)
    rate = 500
    secret = generate_secret()
    rows: list[dict[str, Any]] = []
    lat_rows: list[dict[str, Any]] = []
    tput_plan = {"mode": "throughput", "seconds": seconds, "in_flight": IN_FLIGHT, "secret": secret}
    lat_plan = {"mode": "latency", "rate": rate, "count": count, "secret": secret, "threads": 1}

    def both(
        kind: str,
        system: str,
        receiver: str,
        sender: str,
        plan: dict[str, Any],
        targets: list[dict[str, Any]],
    ) -> None:
        if throughput:
            for r in run_sender(kind, {**tput_plan, **plan, "targets": targets}):
                rows.append(row(system, receiver, sender, r))
                log(
                    f"  {system:10} {receiver:8} <- {sender:9} x{r['fanout']}: {r['rate']:8,.0f} msg/s"
                    f"  (lost {r['lost']})"
                )
        if latency:
            for r in run_sender(kind, {**lat_plan, **plan, "targets": targets[:1]}):
                lat_rows.append(row(system, receiver, sender, r))
                p = lat_rows[-1]["latency_ms"]
                log(
                    f"  {system:10} {receiver:8} <- {sender:9} latency p50 {p['p50']:.2f} ms"
                    f" p99 {p['p99']:.2f} ms (lost {r['lost']})"
                )

    # -- baselines ---------------------------------------------------------------------
    with contextlib.ExitStack() as stack:
        raws = [
            stack.enter_context(start_process([sys.executable, "-m", "benchmarks.raw_receiver"]))
            for _ in range(4)
        ]
        urls = [f"http://127.0.0.1:{p.port}/skyhooks" for p in raws]
        tallies = [f"http://127.0.0.1:{p.port}/tally" for p in raws]
        targets = [
            {"label": f"raw-{n}", "keys": {"bench": "raw"}, "urls": urls[:n], "tallies": tallies[:n]}
            for n in (1, 4)
        ]
        both("raw", "baseline", "raw", "raw", {}, targets)
    with redis_server() as port:
        with contextlib.ExitStack() as stack:
            subs = []
            for i in range(4):
                channels = "one,four" if i == 0 else "four"
                cmd = [
                    sys.executable,
                    "-m",
                    "benchmarks.baselines.redis_subscriber",
                    "--redis-port",
                    str(port),
                    "--channels",
                    channels,
                ]
                subs.append(f"http://127.0.0.1:{stack.enter_context(start_process(cmd)).port}/tally")
            targets = [
                {"label": "redis-1", "keys": {"bench": "redis"}, "channel": "one", "tallies": subs[:1]},
                {"label": "redis-4", "keys": {"bench": "redis"}, "channel": "four", "tallies": subs},
            ]
            both("redis", "baseline", "redis", "redis", {"redis_port": port, "threads": 1}, targets)
        with contextlib.ExitStack() as stack:
            sios = []
            for n in (1, 4):  # one Socket.IO cluster (channel) per size: every server reads every emit
                sios = []
                for _ in range(n):
                    cmd = [
                        sys.executable,
                        "-m",
                        "benchmarks.baselines.socketio_server",
                        "--redis-port",
                        str(port),
                        "--channel",
                        f"sio{n}",
                    ]
                    sios.append(f"http://127.0.0.1:{stack.enter_context(start_process(cmd)).port}/tally")
                target = {
                    "label": f"socketio-{n}",
                    "keys": {"bench": "sio"},
                    "channel": f"sio{n}",
                    "tallies": sios,
                }
                if n == 1 or throughput:
                    saved = latency
                    latency = latency and n == 1
                    both(
                        "socketio",
                        "baseline",
                        "socketio",
                        "socketio",
                        {"redis_port": port, "threads": 1},
                        [target],
                    )
                    latency = saved
                stack.close()

    # -- each framework's floor: the raw client into a bare handler that only parses --------
    if latency:
        for fw in frameworks:
            cmd = [sys.executable, "-m", f"benchmarks.servers.{fw}", "--mode", "bare", "--secret", secret]
            with start_process(cmd) as bare:
                target = {
                    "label": f"{fw}-bare",
                    "keys": {"bench": "floor"},
                    "urls": [f"http://127.0.0.1:{bare.port}/skyhooks"],
                    "tallies": [f"http://127.0.0.1:{bare.port}/tally"],
                }
                for r in run_sender("raw", {**lat_plan, "targets": [target]}):
                    lat_rows.append(row("floor", fw, "raw", r))
                    p = lat_rows[-1]["latency_ms"]
                    log(f"  floor      {fw:8} bare handler <- raw client: latency p50 {p['p50']:.2f} ms")

    # -- skyhooks ------------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{tmp}/bench.db"
        for fw in frameworks:
            with skyhooks_instances(fw, store, secret, 4 if throughput else 1) as tallies:
                targets = targets_for(fw, tallies, (1, 4))
                for pub in publishers:
                    plan = {"store": store, "threads": THREADS}
                    saved = latency
                    # Latency: the blocking publisher into every framework, and each
                    # framework's own publisher into its own receiver.
                    latency = latency and pub in ("blocking", OWN_PUBLISHER.get(fw, fw))
                    both(pub, "skyhooks", fw, pub, plan, targets)
                    latency = saved
                if throughput:
                    # The blocking publisher's submit(), from one thread, IN_FLIGHT unfinished at most.
                    plan = {"store": store, "threads": 1}
                    for r in run_sender("submit", {**tput_plan, **plan, "targets": targets}):
                        rows.append(row("skyhooks", fw, "blocking submit", r))
                        log(f"  skyhooks   {fw:8} <- blocking submit x{r['fanout']}: {r['rate']:8,.0f} msg/s")
                if throughput and fw == "tornado" and not quick:
                    # The same notify() calls with coalescing off (max_in_flight=0): one
                    # POST per message per instance, the per-request ceiling (not in quick runs).
                    for pub in publishers:
                        plan = {"store": store, "threads": THREADS, "options": {"max_in_flight": 0}}
                        for r in run_sender(pub, {**tput_plan, **plan, "targets": targets}):
                            rows.append(row("skyhooks", fw, pub, r, max_in_flight=0))
                            log(
                                f"  skyhooks   {fw:8} <- {pub:9} x{r['fanout']} one POST per message: "
                                f"{r['rate']:8,.0f} msg/s (lost {r['lost']})"
                            )
                if throughput:
                    # batched: notify_many, 100 messages per POST
                    # (quick: the blocking publisher and the framework's own)
                    own = ("blocking", OWN_PUBLISHER.get(fw, fw))
                    for pub in [p for p in publishers if not quick or p in own]:
                        plan = {
                            "store": store,
                            "threads": BATCH_THREADS,
                            "batch": 100,
                            "in_flight": 4,
                            "seconds": seconds,
                        }
                        try:
                            results = run_sender(pub, {**tput_plan, **plan, "targets": targets})
                        except RuntimeError as exc:
                            if "notify_many" not in str(exc):
                                raise
                            log(f"  batched {pub}: n/a (no notify_many yet)")
                            continue
                        for r in results:
                            rows.append(row("skyhooks", fw, pub, r, batch=100))
                            log(
                                f"  skyhooks   {fw:8} <- {pub:9} x{r['fanout']} batched 100/POST: "
                                f"{r['rate']:8,.0f} msg/s (lost {r['lost']})"
                            )
    return {
        "quick": quick,
        "max_in_flight": 2,  # the publishers' default, unless a row says otherwise
        "seconds": seconds,
        "paced_rate": rate,
        "paced_count": count,
        "in_flight": IN_FLIGHT,
        "threads": THREADS,
        "batch_threads": BATCH_THREADS,
        "throughput": rows,
        "latency": lat_rows,
    }
