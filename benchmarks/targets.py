"""The issue's targets, each checked against its baseline interleaved, round after round.

The full matrix (``benchmarks/delivery.py``) runs every baseline first and every
skyhooks configuration after; on a shared machine the baselines alone moved 2x
between runs (Socket.IO: 5,000 to 11,700 msg/s), so a ratio of two numbers
measured a minute apart says little. Here every configuration a target names
runs once per round, in the same order, for several rounds, all against the
same server processes; each figure is the median of its rounds, and each ratio
a ratio of medians. The per-round figures are kept in the JSON.

Throughput: one Tornado instance, Socket.IO and Redis pub/sub baselines, each
publisher unbatched (``notify`` per message, 16 in flight; blocking: 8 threads,
and ``submit`` per message from one thread, 16 unfinished at most) and batched
(``notify_many`` of 100). Latency: paced at 500/s, the Socket.IO
baseline, each framework's bare floor, and the pairs the targets name.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
from typing import Any

from benchmarks.common import start_process
from benchmarks.delivery import IN_FLIGHT, THREADS, percentiles, redis_server, run_sender
from skyhooks import generate_secret

PUBLISHERS = ["blocking", "tornado", "gevent", "twisted"]
FRAMEWORKS = ["tornado", "gevent", "twisted"]


def run(quick: bool, log: Any = print) -> dict[str, Any]:
    rounds = 3 if quick else 5
    seconds = 1.0 if quick else 3.0
    count = 1000 if quick else 3000
    secret = generate_secret()
    tput: dict[str, list[float]] = {}
    lat: dict[str, list[dict[str, float]]] = {}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        port = stack.enter_context(redis_server())
        store = f"sqlite:///{tmp}/targets.db"

        def server(cmd: list[str]) -> int:
            return stack.enter_context(start_process([sys.executable, "-m", *cmd])).port

        sio = server(["benchmarks.baselines.socketio_server", "--redis-port", str(port), "--channel", "t"])
        sub = server(
            ["benchmarks.baselines.redis_subscriber", "--redis-port", str(port), "--channels", "one"]
        )
        instances, floors = {}, {}
        for fw in FRAMEWORKS:
            keys = json.dumps([{"bench": f"t-{fw}"}])
            instances[fw] = server(
                [f"benchmarks.servers.{fw}", "--store", store, "--secret", secret, "--keys", keys]
            )
            floors[fw] = server([f"benchmarks.servers.{fw}", "--mode", "bare", "--secret", secret])

        def tally(port: int) -> list[str]:
            return [f"http://127.0.0.1:{port}/tally"]

        baselines = {
            "socketio": ("socketio", {"keys": {"bench": "sio"}, "channel": "t", "tallies": tally(sio)}),
            "redis": ("redis", {"keys": {"bench": "redis"}, "channel": "one", "tallies": tally(sub)}),
        }

        def skyhooks(fw: str) -> dict[str, Any]:
            return {"keys": {"bench": f"t-{fw}"}, "tallies": tally(instances[fw])}

        common = {"secret": secret, "store": store, "redis_port": port}
        throughput_runs: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
            (name, kind, target, {"threads": 1}) for name, (kind, target) in baselines.items()
        ]
        for pub in PUBLISHERS:
            throughput_runs.append((f"{pub} unbatched", pub, skyhooks("tornado"), {"threads": THREADS}))
        # The blocking publisher's other way: submit() per message from one thread,
        # IN_FLIGHT unfinished at most (its max_pending), as the async senders have.
        throughput_runs.append(("blocking submit unbatched", "submit", skyhooks("tornado"), {"threads": 1}))
        for pub in ("blocking", "tornado"):
            plan = {"threads": THREADS, "batch": 100, "in_flight": 4}
            throughput_runs.append((f"{pub} batched", pub, skyhooks("tornado"), plan))
        latency_runs: list[tuple[str, str, dict[str, Any]]] = [("socketio", *baselines["socketio"])]
        for fw in FRAMEWORKS:
            bare = f"http://127.0.0.1:{floors[fw]}"
            latency_runs.append(
                (
                    f"floor {fw}",
                    "raw",
                    {"keys": {"bench": "floor"}, "urls": [f"{bare}/skyhooks"], "tallies": [f"{bare}/tally"]},
                )
            )
            for pub in ("blocking", fw):
                latency_runs.append((f"{fw} <- {pub}", pub, skyhooks(fw)))

        for round_ in range(rounds):
            for name, kind, target, extra in throughput_runs:
                plan = {"mode": "throughput", "seconds": seconds, "in_flight": IN_FLIGHT, **common, **extra}
                (result,) = run_sender(kind, {**plan, "targets": [{"label": name, **target}]})
                tput.setdefault(name, []).append(result["rate"])
            for name, kind, target in latency_runs:
                plan = {"mode": "latency", "rate": 500, "count": count, "threads": 1, **common}
                (result,) = run_sender(kind, {**plan, "targets": [{"label": name, **target}]})
                lat.setdefault(name, []).append(percentiles(result["latencies"]))
            log(
                f"  round {round_ + 1}/{rounds}: Socket.IO {tput['socketio'][-1]:,.0f} msg/s, "
                f"tornado unbatched {tput['tornado unbatched'][-1]:,.0f}; latency p50 Socket.IO "
                f"{lat['socketio'][-1]['p50']:.2f} ms, "
                f"tornado <- tornado {lat['tornado <- tornado'][-1]['p50']:.2f}"
            )
    return {
        "rounds": rounds,
        "seconds": seconds,
        "paced_count": count,
        "throughput": {name: {"median": statistics.median(v), "rounds": v} for name, v in tput.items()},
        "latency": {
            name: {
                "p50": statistics.median(r["p50"] for r in v),
                "p99": statistics.median(r["p99"] for r in v),
                "rounds": [{"p50": r["p50"], "p99": r["p99"]} for r in v],
            }
            for name, v in lat.items()
        },
    }
