"""Figure 6: the blocking publisher's two ways of keeping messages in flight, into one
Tornado instance: ``notify()`` from N threads, and ``submit()`` from one thread with
at most N unfinished (its ``max_pending``). Past four notify calls at once, both go
through the same backlog and lanes, so what queues travels together; the figure shows
what N threads of callers cost against N submissions from one.

For each N, three runs back to back, in an order that flips every round: notify
from N threads, submit from one, and the Socket.IO emitter from one thread. Each
figure is the median over the rounds of its per-round ratio, so the runs compared
saw the same machine.
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks.common import median
from benchmarks.delivery import run_sender, stage
from skyhooks import generate_secret

THREADS = [1, 2, 4, 8, 16, 32]


def run(quick: bool, log: Any = print) -> dict[str, Any]:
    counts = [1, 4, 16] if quick else THREADS
    rounds, seconds = (1, 0.5) if quick else (3, 2.0)
    secret = generate_secret()
    rates: dict[str, dict[str, list[float]]] = {
        str(n): {"notify": [], "submit": [], "socketio": []} for n in counts
    }
    with stage("threads") as on:
        port, store, server, sio = on.redis_port, on.store, on.start, on.socketio_port
        keys = {"bench": "threads"}
        tornado = server(
            ["benchmarks.servers.tornado", "--store", store, "--secret", secret, "--keys", json.dumps([keys])]
        )
        skyhooks = {"keys": keys, "tallies": [f"http://127.0.0.1:{tornado}/tally"]}
        runs = {
            "notify": ("blocking", skyhooks),
            "submit": ("submit", skyhooks),
            "socketio": (
                "socketio",
                {"keys": {"bench": "sio"}, "channel": "t", "tallies": [f"http://127.0.0.1:{sio}/tally"]},
            ),
        }
        common = {
            "mode": "throughput",
            "seconds": seconds,
            "secret": secret,
            "store": store,
            "redis_port": port,
        }
        for round_ in range(rounds):
            for n in counts:
                order = ["notify", "submit", "socketio"]
                for name in order if round_ % 2 == 0 else order[::-1]:
                    kind, target = runs[name]
                    threads = n if name == "notify" else 1
                    plan = {
                        **common,
                        "threads": threads,
                        "in_flight": n,
                        "targets": [{"label": name, **target}],
                    }
                    (result,) = run_sender(kind, plan)
                    if result["lost"]:
                        raise AssertionError(f"{name} with {n} in flight lost {result['lost']} messages")
                    rates[str(n)][name].append(float(result["rate"]))
                got = {name: values[-1] for name, values in rates[str(n)].items()}
                log(
                    f"  {n:2} in flight: notify from {n} threads {got['notify']:7,.0f} msg/s, "
                    f"submit from one {got['submit']:7,.0f}, Socket.IO (one thread) {got['socketio']:7,.0f}"
                )
    out: dict[str, Any] = {"quick": quick, "rounds": rounds, "seconds": seconds, "rows": []}
    for n in counts:
        r = rates[str(n)]
        out["rows"].append(
            {
                "threads": n,
                "rates": r,
                "notify": median(r["notify"]),
                "submit": median(r["submit"]),
                "socketio": median(r["socketio"]),
                "notify_vs_socketio": median(
                    [a / b for a, b in zip(r["notify"], r["socketio"], strict=True)]
                ),
                "submit_vs_socketio": median(
                    [a / b for a, b in zip(r["submit"], r["socketio"], strict=True)]
                ),
            }
        )
    return out
