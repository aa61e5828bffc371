"""Figure 3b: the receive cost in instructions, which noise hardly moves. Each
receive server of figure 3 (``benchmarks/servers/<framework>.py``, skyhooks
and bare) runs under valgrind's callgrind; wrk sends it signed webhooks, and
the instructions the whole server process executed (framework, HTTP parsing,
skyhooks; not the kernel's) are counted from a zeroed counter over the
requests its callback counted (or its bare handler parsed). Two runs of the
gevent pair differed by 1-2% in each count and not at all in the ratio.

The ratio bare/skyhooks is what figure 3's throughput ratio would read if every
instruction cost the same; where figure 3 reads lower, skyhooks' instructions
cost more than the framework's under load (fewer per cycle: cache misses).
Callgrind emulates the processor, so instructions the real one has and
valgrind does not (SHA extensions, used by OpenSSL for the signature) are
counted as the longer sequences that replace them."""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import received_count, signed_requests, start_process, wrk
from benchmarks.receive import DATA, KEYS, cases, server_command

CONNECTIONS = 4  # under valgrind a server does ~100-300 requests/s: a few suffice


def run(quick: bool, frameworks: list[str], log: Any = print) -> dict[str, Any]:
    from skyhooks import generate_secret

    seconds = 3 if quick else 10
    secret = generate_secret()
    out: dict[str, Any] = {"seconds": seconds, "frameworks": {}}
    for case, fw, endpoint in cases(frameworks):
        counts: dict[str, dict[str, float]] = {}
        for kind in ("skyhooks", "bare"):
            counts[kind] = _count(fw, kind, endpoint, secret, seconds)
        ratio = counts["bare"]["per_request"] / counts["skyhooks"]["per_request"]
        out["frameworks"][case] = {**counts, "ratio": ratio}
        log(
            f"  {case:8} skyhooks {counts['skyhooks']['per_request'] / 1000:6.1f}k instructions/request,"
            f" bare {counts['bare']['per_request'] / 1000:6.1f}k: bare/skyhooks {ratio:.2f}"
        )
    return out


def _count(fw: str, kind: str, endpoint: list[str], secret: str, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        dumps = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={dumps}",
            *server_command(fw, kind, secret, endpoint),
        ]
        # Start-up (imports) under valgrind takes a minute or more.
        with start_process(cmd, timeout=300) as server:
            url = f"http://127.0.0.1:{server.port}"
            # (uvicorn with httptools serves ~700 requests/s under valgrind; the others fewer)
            requests = signed_requests(secret, int(1500 * (seconds + 2)), KEYS, DATA)
            # Warm up (every code path run once, caches filled), then count from zero.
            wrk(f"{url}/skyhooks", requests[:200], 2, CONNECTIONS)
            before = received_count(f"{url}/tally/count")
            _control("--zero", server.process.pid)
            result = wrk(f"{url}/skyhooks", requests[200:], seconds, CONNECTIONS)
            counted = received_count(f"{url}/tally/count") - before
            if result.non_2xx or result.socket_errors or result.requests > len(requests) - 200:
                raise AssertionError(f"{fw} {kind} under valgrind: {result}")
            dump = _control("--dump", server.process.pid, dumps)
    # The second /tally/count request is in the count too: ~0.1% of 1,000 webhooks.
    return {"requests": counted, "instructions": dump, "per_request": dump / counted}


def _control(action: str, pid: int, dumps: Path | None = None) -> int:
    """Zero the server's counters, or dump them and return the instructions since."""
    subprocess.run(["callgrind_control", action, str(pid)], check=True, capture_output=True, timeout=60)
    if dumps is None:
        return 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        files = sorted(dumps.parent.glob(dumps.name + "*"), key=lambda p: p.stat().st_mtime)
        text = files[-1].read_text() if files else ""
        found = re.search(r"^totals: (\d+)", text, re.MULTILINE)
        if found and files[-1] != dumps:  # the dump, not the file written at exit
            return int(found.group(1))
        time.sleep(0.2)
    raise RuntimeError(f"callgrind wrote no dump for {pid} in {dumps.parent}")
