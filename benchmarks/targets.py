"""The issue's targets, each checked against its baseline interleaved, round after round.

The full matrix (``benchmarks/delivery.py``) runs every baseline first and every
skyhooks configuration after; on a shared machine the baselines alone moved 2x
between runs (Socket.IO: 5,000 to 11,700 msg/s), so a ratio of two numbers
measured a minute apart says little. Here every configuration a target names
runs once per round, in the same order, for several rounds, all against the
same server processes, with a Socket.IO run between every two of them. Each
configuration's ratio in a round is to the mean of the Socket.IO runs just
before and just after it (seconds apart), and its figure is the median of those
ratios over the rounds (the median rates are shown beside). The per-round
figures are kept in the JSON.

Throughput: one Tornado instance, Socket.IO and Redis pub/sub baselines, each
publisher unbatched (``notify`` per message, 16 in flight; blocking: 16 threads,
and ``submit`` per message from one thread, 16 unfinished at most) and batched
(``notify_many`` of 100; blocking: 8 threads); and the asyncio publisher (it sends with
aiohttp) the same two ways into one WebhookASGI instance under uvicorn and into one
aiohttp instance, named ``<receiver> <- asyncio ...``. Latency: paced at 500/s, the
Socket.IO baseline, each framework's bare floor, and the pairs the targets name.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from benchmarks.delivery import BATCH_THREADS, IN_FLIGHT, THREADS, percentiles, run_sender, stage
from skyhooks import generate_secret

PUBLISHERS = ["blocking", "tornado", "gevent", "twisted"]
FRAMEWORKS = ["tornado", "gevent", "twisted"]
#: The asyncio receivers (asgi: WebhookASGI under uvicorn), each measured with the asyncio
#: publisher only; their rows come after the others', so the older rows keep their names.
ASYNCIO_FRAMEWORKS = ["asgi", "aiohttp"]


def run(quick: bool, log: Any = print) -> dict[str, Any]:
    # Quick: one round, a first look in about a minute (one round's ratios move
    # by 0.1-0.2 on a shared machine; the medians of five are the figures).
    rounds = 1 if quick else 5
    seconds = 0.5 if quick else 3.0
    count = 500 if quick else 3000  # paced messages per latency run (the targets read p50 and p99)
    secret = generate_secret()
    tput: dict[str, list[float]] = {}
    lat: dict[str, list[dict[str, float]]] = {}
    paired: dict[str, list[float]] = {}  # per configuration and round: its rate / Socket.IO's around it
    paired_lat: dict[str, list[float]] = {}  # its p50 / Socket.IO's around it
    with stage("targets") as on:
        port, store, server, sio = on.redis_port, on.store, on.start, on.socketio_port
        sub = server(
            ["benchmarks.baselines.redis_subscriber", "--redis-port", str(port), "--channels", "one"]
        )
        instances, floors = {}, {}
        for fw in FRAMEWORKS + ASYNCIO_FRAMEWORKS:
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
            plan = {"threads": BATCH_THREADS, "batch": 100, "in_flight": 4}
            throughput_runs.append((f"{pub} batched", pub, skyhooks("tornado"), plan))
        for fw in ASYNCIO_FRAMEWORKS:
            # The tornado rows' plans: IN_FLIGHT notify() at once; notify_many of 100, 4 at once.
            for name, plan in (
                ("unbatched", {"threads": THREADS}),
                ("batched", {"threads": BATCH_THREADS, "batch": 100, "in_flight": 4}),
            ):
                throughput_runs.append((f"{fw} <- asyncio {name}", "asyncio", skyhooks(fw), plan))
        latency_runs: list[tuple[str, str, dict[str, Any]]] = [("socketio", *baselines["socketio"])]
        for fw in FRAMEWORKS + ASYNCIO_FRAMEWORKS:
            bare = f"http://127.0.0.1:{floors[fw]}"
            latency_runs.append(
                (
                    f"floor {fw}",
                    "raw",
                    {"keys": {"bench": "floor"}, "urls": [f"{bare}/skyhooks"], "tallies": [f"{bare}/tally"]},
                )
            )
            for pub in ("asyncio",) if fw in ASYNCIO_FRAMEWORKS else ("blocking", fw):
                latency_runs.append((f"{fw} <- {pub}", pub, skyhooks(fw)))

        def throughput_of(name: str, kind: str, target: dict[str, Any], extra: dict[str, Any]) -> float:
            plan = {"mode": "throughput", "seconds": seconds, "in_flight": IN_FLIGHT, **common, **extra}
            (result,) = run_sender(kind, {**plan, "targets": [{"label": name, **target}]})
            return float(result["rate"])

        def latency_of(name: str, kind: str, target: dict[str, Any]) -> dict[str, float]:
            plan = {"mode": "latency", "rate": 500, "count": count, "threads": 1, **common}
            (result,) = run_sender(kind, {**plan, "targets": [{"label": name, **target}]})
            return percentiles(result["latencies"])

        sio_tput, sio_lat = throughput_runs[0], latency_runs[0]
        for round_ in range(rounds):
            # Socket.IO runs between every two configurations, so each one has a
            # baseline measured seconds before it and seconds after: its ratio is
            # to the mean of those two (the machine's speed drifts within a round).
            before = throughput_of(*sio_tput)
            tput.setdefault("socketio", []).append(before)
            for name, kind, target, extra in throughput_runs[1:]:
                got = throughput_of(name, kind, target, extra)
                after = throughput_of(*sio_tput)
                tput.setdefault(name, []).append(got)
                paired.setdefault(name, []).append(got / ((before + after) / 2))
                tput["socketio"].append(after)
                before = after
            lat_before = latency_of(*sio_lat)
            lat.setdefault("socketio", []).append(lat_before)
            for name, kind, target in latency_runs[1:]:
                got_lat = latency_of(name, kind, target)
                lat_after = latency_of(*sio_lat)
                lat.setdefault(name, []).append(got_lat)
                around = (lat_before["p50"] + lat_after["p50"]) / 2
                paired_lat.setdefault(name, []).append(got_lat["p50"] / around)
                lat["socketio"].append(lat_after)
                lat_before = lat_after
            log(
                f"  round {round_ + 1}/{rounds}: tornado unbatched {paired['tornado unbatched'][-1]:.2f}x "
                f"Socket.IO (median {statistics.median(tput['socketio']):,.0f} msg/s); latency "
                f"tornado <- tornado p50 {paired_lat['tornado <- tornado'][-1]:.2f}x Socket.IO's"
            )
            for fw in ASYNCIO_FRAMEWORKS:
                log(
                    f"    {fw} <- asyncio: unbatched {paired[f'{fw} <- asyncio unbatched'][-1]:.2f}x, "
                    f"batched {paired[f'{fw} <- asyncio batched'][-1]:.2f}x Socket.IO; latency p50 "
                    f"{paired_lat[f'{fw} <- asyncio'][-1]:.2f}x Socket.IO's"
                )
    return {
        "rounds": rounds,
        "seconds": seconds,
        "paced_count": count,
        "paired": True,  # each ratio is to the Socket.IO runs on either side of it
        "throughput": {
            name: {
                "median": statistics.median(v),
                "rounds": v,
                **(
                    {"ratio": statistics.median(paired[name]), "ratios": paired[name]}
                    if name in paired
                    else {}
                ),
            }
            for name, v in tput.items()
        },
        "latency": {
            name: {
                "p50": statistics.median(r["p50"] for r in v),
                "p99": statistics.median(r["p99"] for r in v),
                "rounds": [{"p50": r["p50"], "p99": r["p99"]} for r in v],
                **(
                    {"ratio": statistics.median(paired_lat[name]), "ratios": paired_lat[name]}
                    if name in paired_lat
                    else {}
                ),
            }
            for name, v in lat.items()
        },
    }
