"""The framework-free half of the benchmark receive servers.

Each ``benchmarks/servers/<framework>.py`` serves, on one 127.0.0.1 port:

- ``POST /skyhooks``: ``--mode skyhooks``, the adapter's webhook handler with one
  counting callback (:meth:`Tally.callback`) registered under each of ``--keys``;
  ``--mode bare``, a bare handler of the same framework that only parses the JSON;
- ``GET /tally/count``: callbacks run (skyhooks) or POSTs parsed (bare) so far;
- ``GET /tally/latencies``: arrival minus send time (ms) of every message whose
  data carried ``"t"`` (``time.time()`` at the sender), as JSON; the list is cleared.

and prints ``LISTENING <port>`` once every subscription is in the store. Lighter
than ``tests/adapters/instances`` (which record every message): what is
measured is skyhooks, not the recorder.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Any


class Tally:
    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[float] = []

    def callback(self, message: Any) -> None:
        self.count += 1
        data = message.data
        if type(data) is dict and "t" in data:
            self.latencies.append((time.time() - data["t"]) * 1000)

    def parsed(self, body: bytes) -> None:
        """What a bare handler does: parse, count (and time, like the callback)."""
        data = json.loads(body)
        self.count += 1
        if type(data) is dict:
            data = data.get("data", data)
            if type(data) is dict and "t" in data:
                self.latencies.append((time.time() - data["t"]) * 1000)

    def answer(self, what: str) -> bytes | None:
        if what == "count":
            return str(self.count).encode()
        if what == "latencies":
            body, self.latencies = json.dumps(self.latencies).encode(), []
            return body
        return None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["skyhooks", "bare"], default="skyhooks")
    parser.add_argument("--store", default="memory://")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--keys", default='[{"account_id": 1}]', help="JSON list of key sets")
    parser.add_argument(
        "--endpoint",
        choices=["delegate", "handler"],
        default="delegate",
        help="Tornado only: routing targets without a RequestHandler (WebhookDelegate, and a bare "
        "delegate), or RequestHandlers (WebhookHandler, and a bare RequestHandler)",
    )
    args = parser.parse_args()
    args.keys = json.loads(args.keys)
    return args


def announce(port: int) -> None:
    """Say the server is ready, after a full garbage collection: the first one
    after start-up takes 17-24 ms in a Twisted server and would otherwise land a
    few hundred requests into the first run. Every server here, the baselines
    too, announces through this."""
    gc.collect()
    print(f"LISTENING {port}", flush=True)
