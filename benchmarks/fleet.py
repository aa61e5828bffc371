"""Figure 7: the fleet. What one message costs as the fleet of instances grows.

1, 4, 16 and 64 instances share 100k accounts (account *a* belongs to instance
``a % N``), and every message is for one random account, so exactly one instance
wants it. skyhooks looks the account up in its store and POSTs to that one
instance; python-socketio's Redis manager (the broadcast peer) publishes to one
channel that every node reads, and every node but one decodes the message only
to find nobody in its room. Instances share processes (two at most, so 64 fit
on two cores): ``benchmarks/servers/fleet.py`` hosts skyhooks instances, each
with its own registry, port and URL; ``benchmarks/baselines/socketio_fleet.py``
hosts Socket.IO nodes, each with its own Redis subscription.

Per system, every size's fleet is up at once (each size its own SQLite file,
Redis key prefix or Socket.IO channel) and one sender process measures them
in rounds, the sizes in a rotating order within each round, so each round
compares the sizes within the same few seconds of this shared machine. Per
run: delivered messages/s counted at the callbacks (a Tornado publisher, 16
``notify()`` in flight, coalescing off so every message is one POST at every
size; the Socket.IO emitter from one thread, kept at most ``WINDOW`` messages
ahead of its slowest node) and the CPU time every process of the system spent
per delivered message (publisher, receivers, Redis; read from ``/proc`` around
the run, so other work on the machine is not counted). Then, per size,
notify-to-callback latency paced at 500/s. The report takes, per size, the
median over the rounds of its figures and of their ratio to size 1's in the
same round.

    python -m benchmarks fleet [--quick]
    python -m benchmarks.fleet send PLAN_JSON     # the sender (the parent runs it)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import start_process
from benchmarks.delivery import percentiles
from skyhooks import generate_secret

SIZES = [1, 4, 16, 64]
ACCOUNTS = 100_000
SYSTEMS = ["sqlite", "redis", "redis-cluster", "socketio"]
PROCESSES = 2  # receiver processes per size (one when there is one instance)
IN_FLIGHT = 16  # notify() calls in flight in the skyhooks publisher
WINDOW = 1000  # messages the Socket.IO emitter may run ahead of its slowest node
PACED_RATE = 500
PARTS = ("publisher", "receivers", "store")  # where the CPU time is read


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process *pid* has used (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Shape:
    """How big and how long: the figure's (``FULL``, ``QUICK``), or a smoke test's."""

    accounts: int = ACCOUNTS
    rounds: int = 5
    seconds: float = 1.5  # per throughput run
    paced_count: int = 1000  # messages per latency run


FULL = Shape()
QUICK = Shape(rounds=1, seconds=1.0, paced_count=300)


# -- the parent: servers, every size's fleet, the sender ---------------------------------------


@dataclass
class Backend:
    """What one system runs on: each size's store URL (or channel), and the server
    pids whose CPU time counts."""

    system: str
    store: Callable[[int], str] = lambda n: ""
    pids: list[int] = field(default_factory=list)
    redis_port: int = 0


@contextlib.contextmanager
def backend(system: str, tmp: Path) -> Iterator[Backend]:
    tmp.mkdir(parents=True, exist_ok=True)
    if system == "sqlite":
        yield Backend(system, store=lambda n: f"sqlite:///{tmp}/fleet-{n}.db")
        return
    from tests.support.redis import RedisCluster, RedisServer

    if system == "redis-cluster":
        cluster = RedisCluster(tmp).start()
        try:
            pids = [pid for pid in cluster.pids if pid is not None]
            yield Backend(system, store=lambda n: f"{cluster.url()}?prefix=fleet{n}", pids=pids)
        finally:
            cluster.stop()
        return
    # A slow subscriber is not cut off: the emitter's window bounds the backlog.
    server = RedisServer(tmp, extra_args=["--client-output-buffer-limit", "pubsub 0 0 0"]).start()
    try:
        assert server.pid is not None
        yield Backend(
            system,
            store=lambda n: f"{server.url(0)}?prefix=fleet{n}",
            pids=[server.pid],
            redis_port=server.port,
        )
    finally:
        server.stop()


def groups(n: int) -> list[list[int]]:
    """Instance indexes per receiver process: ``[[0, 2, ...], [1, 3, ...]]``."""
    count = min(PROCESSES, n)
    return [list(range(i, n, count)) for i in range(count)]


def start_fleet(
    stack: contextlib.ExitStack, on: Backend, n: int, secret: str, accounts: int
) -> dict[str, Any]:
    """*n* instances (or Socket.IO nodes) in their processes, until *stack* closes:
    the sender's target for them."""
    tallies, pids = [], []
    for group in groups(n):
        common = ["--instances", ",".join(map(str, group)), "--of", str(n), "--accounts", str(accounts)]
        if on.system == "socketio":
            cmd = ["benchmarks.baselines.socketio_fleet", "--redis-port", str(on.redis_port)]
            cmd += ["--channel", f"fleet{n}", *common]
        else:
            cmd = ["benchmarks.servers.fleet", "--store", on.store(n), "--secret", secret, *common]
        proc = stack.enter_context(start_process([sys.executable, "-m", *cmd], timeout=180))
        tallies.append(f"http://127.0.0.1:{proc.port}/tally")
        pids.append(proc.process.pid)
    if on.system == "socketio":
        wait_subscribed(on.redis_port, f"fleet{n}", n)
    return {
        "instances": n,
        "store": on.store(n),
        "channel": f"fleet{n}",
        "tallies": tallies,
        "receiver_pids": pids,
    }


def wait_subscribed(port: int, channel: str, nodes: int, timeout: float = 30) -> None:
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + timeout
    try:
        while client.pubsub_numsub(channel)[0][1] < nodes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{nodes} Socket.IO nodes did not all subscribe to {channel}")
            time.sleep(0.05)
    finally:
        client.close()


def send(plan: dict[str, Any], timeout: float = 900) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.fleet", "send", json.dumps(plan)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"fleet sender failed: {out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def measure(on: Backend, sizes: list[int], secret: str, shape: Shape, log: Any) -> list[dict[str, Any]]:
    """Every size of one system: rounds of throughput runs, then a latency run each."""
    with contextlib.ExitStack() as stack:
        t0 = time.monotonic()
        targets = [start_fleet(stack, on, n, secret, shape.accounts) for n in sizes]
        log(f"  {on.system}: fleets of {', '.join(map(str, sizes))} up in {time.monotonic() - t0:.1f} s")
        plan = {
            "kind": "socketio" if on.system == "socketio" else "skyhooks",
            "secret": secret,
            "redis_port": on.redis_port,
            "store_pids": on.pids,
            "targets": targets,
            "accounts": shape.accounts,
            "rounds": shape.rounds,
            "seconds": shape.seconds,
            "in_flight": IN_FLIGHT,
            "window": WINDOW,
            "rate": PACED_RATE,
            "count": shape.paced_count,
        }
        runs = send({**plan, "mode": "throughput"})
        paced = {r["instances"]: r for r in send({**plan, "mode": "latency"})}
    rows = []
    base = {r["round"]: r for r in runs if r["instances"] == sizes[0]}
    for n in sizes:
        rounds = sorted((r for r in runs if r["instances"] == n), key=lambda r: r["round"])
        for r in rounds:
            r["cpu_us_per_message"] = sum(r["cpu"].values()) / max(1, r["delivered"]) * 1e6
        for r in rounds:  # against size 1 in the same round (base's own was set above)
            first = base[r["round"]]
            r["cost_ratio"] = r["cpu_us_per_message"] / first["cpu_us_per_message"]
            r["time_ratio"] = first["rate"] / r["rate"]
        row = {
            "system": on.system,
            "instances": n,
            "processes": len(groups(n)),
            "rate": statistics.median(r["rate"] for r in rounds),
            "cpu_us_per_message": statistics.median(r["cpu_us_per_message"] for r in rounds),
            "cpu_us": {
                part: statistics.median(r["cpu"][part] / max(1, r["delivered"]) * 1e6 for r in rounds)
                for part in PARTS
            },
            "cost_ratio": statistics.median(r["cost_ratio"] for r in rounds),
            "time_ratio": statistics.median(r["time_ratio"] for r in rounds),
            "sent": sum(r["sent"] for r in rounds),
            "delivered": sum(r["delivered"] for r in rounds),
            "lost": sum(r["lost"] for r in rounds) + paced[n]["lost"],
            "rounds": rounds,
            "latency_ms": percentiles(paced[n]["latencies"]),
            "paced_lost": paced[n]["lost"],
        }
        rows.append(row)
        p = row["latency_ms"]
        log(
            f"  {on.system:13} x{n:<3} {row['rate']:8,.0f} msg/s {row['cpu_us_per_message']:6.0f} us CPU/msg "
            f"({row['cost_ratio']:.2f}x size {sizes[0]}; rounds "
            f"{min(r['cost_ratio'] for r in rounds):.2f}-{max(r['cost_ratio'] for r in rounds):.2f})  "
            f"p99 {p['p99']:7.2f} ms  (lost {row['lost']})"
        )
    return rows


def run(
    quick: bool,
    log: Any = print,
    systems: list[str] = SYSTEMS,
    sizes: list[int] = SIZES,
    shape: Shape | None = None,
) -> dict[str, Any]:
    shape = shape or (QUICK if quick else FULL)
    secret = generate_secret()
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for system in systems:
            reason = unavailable(system)
            if reason:
                skipped[system] = reason
                log(f"  {system}: not measured: {reason}")
                continue
            with backend(system, Path(tmp) / system) as on:
                rows += measure(on, sizes, secret, shape, log)
    return {
        "quick": quick,
        "accounts": shape.accounts,
        "sizes": sizes,
        "rounds": shape.rounds,
        "seconds": shape.seconds,
        "paced_count": shape.paced_count,
        "paced_rate": PACED_RATE,
        "in_flight": IN_FLIGHT,
        "window": WINDOW,
        "rows": rows,
        "skipped": skipped,
    }


def unavailable(system: str) -> str | None:
    """Why *system* cannot be measured here, or None."""
    import shutil

    if system != "sqlite" and shutil.which("redis-server") is None:
        return "redis-server is not installed: apt-get install redis-server"
    if system == "redis-cluster" and shutil.which("redis-cli") is None:
        return "redis-cli is not installed: apt-get install redis-tools"
    return None


# -- the sender: every measured run of one system, in a process of its own ---------------------


def sender_main(plan: dict[str, Any]) -> None:
    from benchmarks.sender import DATA, drain, paced_async, paced_blocking, run_async, tally_get

    rng, accounts = random.Random(1), plan["accounts"]
    latency = plan["mode"] == "latency"
    socketio = plan["kind"] == "socketio"

    def total(target: dict[str, Any], what: str) -> int:
        return sum(int(tally_get(base, what)) for base in target["tallies"])

    def cpu(target: dict[str, Any]) -> dict[str, float]:
        return {
            "publisher": time.process_time(),
            "receivers": sum(cpu_seconds(pid) for pid in target["receiver_pids"]),
            "store": sum(cpu_seconds(pid) for pid in plan["store_pids"]),
        }

    def begin(target: dict[str, Any]) -> dict[str, Any]:
        import gc

        gc.collect()
        for base in target["tallies"]:
            tally_get(base, "latencies")  # cleared: only this run's are reported
        return {
            "count": total(target, "count"),
            "seen": total(target, "seen") if socketio else 0,
            "cpu": cpu(target),
            "at": time.monotonic(),
        }

    def finish(target: dict[str, Any], start: dict[str, Any], sent: int, **extra: Any) -> None:
        n = target["instances"]
        got, done = drain(target, start["count"], sent, 60)
        result: dict[str, Any] = {"instances": n, "sent": sent, "delivered": got, "lost": sent - got, **extra}
        if socketio:
            # Every node's work counts: wait until each has handled every emit.
            deadline = time.monotonic() + 60
            result["seen"] = total(target, "seen") - start["seen"]
            while result["seen"] < sent * n and time.monotonic() < deadline:
                time.sleep(0.005)
                result["seen"] = total(target, "seen") - start["seen"]
            done = time.monotonic()
        after = cpu(target)
        result["cpu"] = {part: after[part] - start["cpu"][part] for part in PARTS}
        result["seconds"] = done - start["at"]
        result["rate"] = got / (done - start["at"])
        if latency:
            result["latencies"] = [x for base in target["tallies"] for x in tally_get(base, "latencies")]
        print(json.dumps(result), flush=True)

    def data(i: int) -> dict[str, Any]:
        return {"progress": 50, "step": "resizing images", "i": i, "t": time.time()}

    def order(round_: int) -> list[dict[str, Any]]:
        """The targets, each round starting one later: no size always runs first."""
        targets = plan["targets"]
        at = round_ % len(targets)
        return targets[at:] + targets[:at]

    if socketio:
        import socketio as sio

        emitters = {
            t["channel"]: sio.RedisManager(
                f"redis://127.0.0.1:{plan['redis_port']}/0", channel=t["channel"], write_only=True
            )
            for t in plan["targets"]
        }

        def emit(target: dict[str, Any], account: int, payload: Any) -> None:
            message = {"keys": {"account_id": account}, "data": payload}
            emitters[target["channel"]].emit("hook", message, room=f"a{account}")

        for target in plan["targets"]:
            warm(lambda account: emit(target, account, data(0)), target)  # noqa: B023
        if latency:
            for target in plan["targets"]:
                start = begin(target)
                send_one = lambda t, payload: emit(t, rng.randrange(accounts), payload)  # noqa: E731
                finish(target, start, paced_blocking(send_one, "threads", plan, target))
            return
        for round_ in range(plan["rounds"]):
            for target in order(round_):
                start = begin(target)
                sent, stop, nodes = 0, start["at"] + plan["seconds"], target["instances"]
                while time.monotonic() < stop:
                    for _ in range(100):
                        emit(target, rng.randrange(accounts), DATA)  # as skyhooks' throughput runs send
                        sent += 1
                    # Within WINDOW of the slowest node: an emitter that outran its nodes
                    # would only fill Redis's buffers, and the run end when they drained.
                    while total(target, "seen") - start["seen"] < (sent - plan["window"]) * nodes:
                        time.sleep(0.001)
                finish(target, start, sent, round=round_)
        return

    import asyncio

    from skyhooks.tornado import Publisher

    async def go() -> None:
        loop = asyncio.get_running_loop()
        publishers = {
            t["instances"]: Publisher(t["store"], plan["secret"], max_in_flight=0) for t in plan["targets"]
        }

        async def notify(target: dict[str, Any], account: int, payload: Any) -> None:
            report = await publishers[target["instances"]].notify({"account_id": account}, payload)
            if report.failed:
                raise RuntimeError(f"delivery failed: {report.failed}")

        async def gather(aws: list[Any]) -> Any:
            return await asyncio.gather(*aws)

        def send_one(target: dict[str, Any], payload: Any) -> Any:
            return notify(target, rng.randrange(accounts), payload)

        for target in plan["targets"]:
            # The tallies are read with blocking calls: in a thread, so the loop keeps sending.
            await loop.run_in_executor(
                None,
                warm,
                lambda account: asyncio.run_coroutine_threadsafe(
                    notify(target, account, data(0)),  # noqa: B023
                    loop,
                ).result(),
                target,
            )
        if latency:
            for target in plan["targets"]:
                start = await loop.run_in_executor(None, begin, target)
                sent = await paced_async(send_one, asyncio.sleep, gather, plan, target, asyncio.ensure_future)
                await loop.run_in_executor(None, finish, target, start, sent)
        else:
            for round_ in range(plan["rounds"]):
                for target in order(round_):
                    start = await loop.run_in_executor(None, begin, target)
                    sent = await run_async(send_one, gather, plan, target)
                    await loop.run_in_executor(None, lambda: finish(target, start, sent, round=round_))  # noqa: B023
        for publisher in publishers.values():
            publisher.close()

    asyncio.run(go())


def warm(send_to: Callable[[int], Any], target: dict[str, Any]) -> None:
    """One message to an account of every instance (account k lives on instance k):
    every connection opened and every subscriber listening before the clock starts."""
    from benchmarks.sender import drain, tally_get

    n = target["instances"]
    before = sum(int(tally_get(base, "count")) for base in target["tallies"])
    for account in range(n):
        send_to(account)
    got, _ = drain(target, before, n, 30)
    if got < n:
        raise SystemExit(f"warm-up: {got} of {n} instances counted their message")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "send":
        sender_main(json.loads(sys.argv[2]))
    else:
        raise SystemExit(__doc__)
