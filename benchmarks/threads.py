"""Figure 6: the blocking publisher's ``notify()`` from many threads, into one
Tornado instance.

For each number of threads, three runs back to back, in an order that flips
every round: ``notify()`` as shipped (beyond ``INLINE_NOTIFIES`` calls at once,
the rest queue and travel together), the baseline with the queue off (every
call delivers its own message, as before the queue existed), and the Socket.IO
emitter from one thread. Each figure is the median over the rounds of its per-round
ratio, so both variants of a round saw the same machine.
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks.common import median
from benchmarks.delivery import run_sender, stage
from skyhooks import generate_secret

THREADS = [1, 2, 4, 8, 16, 32]
NEVER = 1_000_000  # INLINE_NOTIFIES for the baseline: every call inline


def run(quick: bool, log: Any = print) -> dict[str, Any]:
    counts = [1, 4, 16] if quick else THREADS
    rounds, seconds = (1, 0.5) if quick else (3, 2.0)
    secret = generate_secret()
    rates: dict[str, dict[str, list[float]]] = {
        str(n): {"shipped": [], "inline": [], "socketio": []} for n in counts
    }
    with stage("threads") as on:
        port, store, server, sio = on.redis_port, on.store, on.start, on.socketio_port
        keys = {"bench": "threads"}
        tornado = server(
            ["benchmarks.servers.tornado", "--store", store, "--secret", secret, "--keys", json.dumps([keys])]
        )
        runs = {
            "shipped": ("blocking", {"keys": keys, "tallies": [f"http://127.0.0.1:{tornado}/tally"]}, {}),
            "inline": (
                "blocking",
                {"keys": keys, "tallies": [f"http://127.0.0.1:{tornado}/tally"]},
                {"inline_notifies": NEVER},
            ),
            "socketio": (
                "socketio",
                {"keys": {"bench": "sio"}, "channel": "t", "tallies": [f"http://127.0.0.1:{sio}/tally"]},
                {},
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
                order = ["shipped", "inline", "socketio"]
                for name in order if round_ % 2 == 0 else order[::-1]:
                    kind, target, extra = runs[name]
                    threads = 1 if name == "socketio" else n
                    plan = {**common, **extra, "threads": threads, "targets": [{"label": name, **target}]}
                    (result,) = run_sender(kind, plan)
                    if result["lost"]:
                        raise AssertionError(f"{name} from {n} threads lost {result['lost']} messages")
                    rates[str(n)][name].append(float(result["rate"]))
                got = {name: values[-1] for name, values in rates[str(n)].items()}
                log(
                    f"  {n:2} threads: notify {got['shipped']:7,.0f} msg/s, every call inline "
                    f"{got['inline']:7,.0f}, Socket.IO (one thread) {got['socketio']:7,.0f}"
                )
    out: dict[str, Any] = {"quick": quick, "rounds": rounds, "seconds": seconds, "rows": []}
    for n in counts:
        r = rates[str(n)]
        out["rows"].append(
            {
                "threads": n,
                "rates": r,
                "shipped": median(r["shipped"]),
                "inline": median(r["inline"]),
                "socketio": median(r["socketio"]),
                "vs_inline": median([a / b for a, b in zip(r["shipped"], r["inline"], strict=True)]),
                "vs_socketio": median([a / b for a, b in zip(r["shipped"], r["socketio"], strict=True)]),
            }
        )
    return out
