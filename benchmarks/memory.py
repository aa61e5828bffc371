"""Figure 5: memory per local subscription. One instance program (a process of its
own per framework) registers N distinct topics, one callback each, in a registry over a
SQLite store, not started (so its pending store writes are counted too);
bytes per subscription = tracemalloc's traced-heap
growth (Python allocations only: the registry's callback table, topics, pending
store writes) / N, and the RSS growth / N alongside (includes allocator slack and
sqlite's page cache). The callbacks themselves are created before measuring: they
are the application's, not skyhooks'.

    python -m benchmarks.memory FRAMEWORK N   # prints one JSON line
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from typing import Any


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        import os

        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(framework: str, n: int) -> dict[str, Any]:
    import gc
    import tracemalloc

    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{tmp}/memory.db"
        if framework == "gevent":
            from skyhooks.gevent import Registry
        elif framework == "twisted":
            from skyhooks.twisted import Registry
        elif framework in ("asgi", "aiohttp"):
            from skyhooks.asyncio import Registry
        else:
            from skyhooks.tornado import Registry
        registry = Registry("http://127.0.0.1:9/skyhooks", store, "whsec_" + "A" * 32, ttl=3600)
        keys = [{"account_id": i} for i in range(n)]
        callbacks = [(lambda message: None) for _ in range(n)]
        registry.register({"warm": 1}, callbacks[0])  # first-use allocations are not per subscription
        gc.collect()
        rss0 = rss_bytes()
        tracemalloc.start()
        for k, cb in zip(keys, callbacks, strict=True):
            registry.register(k, cb)
        gc.collect()
        traced, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = rss_bytes() - rss0
        assert len(registry.topics) == n + 1
    return {
        "framework": framework,
        "subscriptions": n,
        "tracemalloc_bytes": traced,
        "bytes_per_subscription": traced / n,
        "rss_bytes_per_subscription": rss / n,
    }


def run(quick: bool, frameworks: list[str], log: Any = print) -> dict[str, Any]:
    n = 20_000 if quick else 100_000
    rows = []
    for fw in frameworks:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", fw, str(n)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        rows.append(json.loads(out.stdout.splitlines()[-1]))
        log(
            f"  {fw:8} {n:,} local subscriptions: {rows[-1]['bytes_per_subscription']:.0f} B each "
            f"(tracemalloc), {rows[-1]['rss_bytes_per_subscription']:.0f} B (RSS delta)"
        )
    return {"rows": rows}


#: Registries built on asyncio's, which bind to the running loop at their first use.
ON_ASYNCIO = ("tornado", "asgi", "aiohttp")


if __name__ == "__main__":
    framework, count = sys.argv[1], int(sys.argv[2])
    if framework == "gevent":
        from gevent import monkey

        monkey.patch_all()
    if framework in ON_ASYNCIO:
        import asyncio

        async def on_a_loop() -> dict[str, Any]:
            return measure(framework, count)

        print(json.dumps(asyncio.run(on_a_loop())))
    else:
        print(json.dumps(measure(framework, count)))
