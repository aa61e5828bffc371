"""Figure 3: receive overhead. wrk POSTs signed webhooks to the adapter's handler
(verify, parse, dispatch to one counting callback) and the same bytes to a bare
handler of the same framework, built the same way, that only parses the JSON
(Tornado: WebhookDelegate against a bare delegate, and WebhookHandler against a
bare RequestHandler; asgi: WebhookASGI under uvicorn against a bare ASGI app; aiohttp:
WebhookHandler against a bare aiohttp handler); each in a server process
of its own (``benchmarks/servers/<framework>.py``), alternated A B, B A, ... so a
drift in the machine's speed favours neither, with new message ids every round;
each run's answers are checked against the server's count of callbacks run (or
bodies parsed). Also the server's CPU time per request.

A control in the same rounds: a second bare server process, alternated with the
first the same way (an A/A test). Its ratio would be 1.00 on a quiet machine;
how far its rounds stray from that is how far this machine's noise alone moves
a ratio, read beside the skyhooks/bare rounds. (On a shared 2-core VM its rounds
have read 0.85-1.25 even with both bare servers loaded at once.)"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

from benchmarks.common import median, received_count, signed_requests, start_process, wrk

KEYS = {"account_id": 1}
CONNECTIONS = 32
DATA = {"progress": 50, "step": "resizing images"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process *pid* so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cases(frameworks: list[str]) -> list[tuple[str, str, list[str]]]:
    """(name, framework, server arguments) of each handler measured. Tornado
    twice: its recommended endpoint (WebhookDelegate, no RequestHandler)
    against a bare delegate, and WebhookHandler against a bare RequestHandler."""
    found: list[tuple[str, str, list[str]]] = [(fw, fw, []) for fw in frameworks]
    if "tornado" in frameworks:
        found.insert(
            frameworks.index("tornado") + 1,
            ("tornado (RequestHandler)", "tornado", ["--endpoint", "handler"]),
        )
    return found


def server_command(fw: str, mode: str, secret: str, endpoint: list[str]) -> list[str]:
    """The command of one receive server (*mode* "skyhooks" or "bare"), its
    callback registered under KEYS."""
    return [
        sys.executable,
        "-m",
        f"benchmarks.servers.{fw}",
        "--mode",
        mode,
        "--secret",
        secret,
        "--keys",
        json.dumps([KEYS]),
        *endpoint,
    ]


def run(quick: bool, frameworks: list[str], log: Any = print) -> dict[str, Any]:
    from skyhooks import generate_secret

    # Odd: the medians are real ones. Quick still takes three: one 1 s run on a
    # shared machine has read 1.21 (Twisted) one way and 0.83 the other.
    seconds, rounds = (1, 3) if quick else (5, 5)
    secret = generate_secret()
    out: dict[str, Any] = {"seconds": seconds, "rounds": rounds, "frameworks": {}}
    for case, fw, endpoint in cases(frameworks):
        rates: dict[str, list[float]] = {"skyhooks": [], "bare": [], "bare again": []}
        cpu_us: dict[str, list[float]] = {"skyhooks": [], "bare": [], "bare again": []}
        with contextlib.ExitStack() as stack:
            servers = {}
            for kind in rates:
                cmd = server_command(fw, kind.split()[0], secret, endpoint)
                servers[kind] = stack.enter_context(start_process(cmd))
            for round_ in range(rounds):
                # New ids every round: the skyhooks server remembers those it has
                # dispatched, and answers a replayed one as a duplicate without
                # dispatching it, which is cheaper (reusing one set of requests
                # flattered skyhooks from the second round on). Both handlers get
                # the same bytes.
                requests = signed_requests(secret, 40_000 * seconds, KEYS, DATA)
                # skyhooks and bare adjacent both ways, and the two bare servers too.
                order = ("skyhooks", "bare", "bare again")
                for kind in order if round_ % 2 == 0 else order[::-1]:
                    server = servers[kind]
                    tally = f"http://127.0.0.1:{server.port}/tally/count"
                    counted, used = received_count(tally), cpu_seconds(server.process.pid)
                    result = wrk(f"http://127.0.0.1:{server.port}/skyhooks", requests, seconds, CONNECTIONS)
                    used = cpu_seconds(server.process.pid) - used
                    counted = received_count(tally) - counted
                    if result.non_2xx or result.socket_errors:
                        raise AssertionError(f"{case} {kind}: {result}")
                    # (Only skyhooks tells a replayed id; a bare handler parses the bytes alike.)
                    if kind == "skyhooks" and result.requests > len(requests):
                        raise AssertionError(f"{case} {kind}: ids repeated; more requests needed")
                    # Every answer wrk counted was dispatched (skyhooks: to the one
                    # callback, none a duplicate) or parsed (bare); a few more may have
                    # been in flight when wrk stopped, here or at the end of the last run.
                    if not result.requests <= counted <= result.requests + 2 * CONNECTIONS:
                        raise AssertionError(f"{case} {kind}: {counted} counted, {result.requests} answers")
                    rates[kind].append(result.requests_per_s)
                    cpu_us[kind].append(used / result.requests * 1e6)
        per_round = [a / b for a, b in zip(rates["skyhooks"], rates["bare"], strict=True)]
        control = [a / b for a, b in zip(rates["bare again"], rates["bare"], strict=True)]
        ratio, control_ratio = median(per_round), median(control)
        cpu_ratio = median([b / a for a, b in zip(cpu_us["skyhooks"], cpu_us["bare"], strict=True)])
        out["frameworks"][case] = {
            "rates": rates,
            "cpu_us": cpu_us,
            "ratio": ratio,
            "cpu_ratio": cpu_ratio,
            "rounds": per_round,
            "control_ratio": control_ratio,
            "control_rounds": control,
        }
        log(
            f"  {case:8} skyhooks {median(rates['skyhooks']):7,.0f} req/s, bare {median(rates['bare']):7,.0f}"
            f" req/s: ratio {ratio:.2f} (rounds {min(per_round):.2f}-{max(per_round):.2f});"
            f" CPU/request bare/skyhooks {cpu_ratio:.2f}; the bare server against itself"
            f" {control_ratio:.2f} (rounds {min(control):.2f}-{max(control):.2f})"
        )
    return out
