"""Every skyhooks benchmark figure, each against its baseline in the same run.

    python -m benchmarks all --quick     # every figure, a first look (about 2 1/2 minutes on 2 cores)
    python -m benchmarks all             # the figures: 5 rounds, longer runs (about 35 minutes)
    python -m benchmarks targets|throughput|latency|delivery|receive|instructions|stores|memory|threads|fleet
                         [--quick]
    python -m benchmarks report          # rebuild RESULTS.md and the plots from results/*.json

0. targets: each target's configurations against their baselines, interleaved
   round after round, medians (``benchmarks/targets.py``).
1. throughput: delivered messages/s counted at the receivers' callbacks, one
   publisher process -> 1 and 4 instances, every adapter as receiver and every
   publisher (and batched with ``notify_many``), vs raw HTTP, Redis pub/sub and a
   Socket.IO Redis emitter (``benchmarks/delivery.py``).
2. latency: notify() -> callback in another process, p50/p99/p999, paced at 500/s.
3. receive: each adapter's handler vs a bare handler of its framework, under wrk.
   instructions: the same servers' instructions per request, counted by callgrind
   (noise hardly moves it; ``benchmarks/instructions.py``).
4. stores: lookup latency and add/renew throughput from 1k to 1M subscriptions.
5. memory: bytes per local subscription with 100k callbacks registered.
6. threads: the blocking publisher's notify() from 1 to 32 threads against submit()
   from one thread with as many unfinished (``benchmarks/threads.py``).
7. fleet: 1 to 64 instances sharing 100k accounts, each message for one of them:
   skyhooks on SQLite, Redis and Redis Cluster against the Socket.IO Redis manager,
   whose every node reads every message (``benchmarks/fleet.py``; ~4 minutes, quick ~1 1/2).

Needs ``redis-server``, ``wrk`` and ``valgrind`` (Debian packages) and the ``bench`` extra;
MongoDB figures need the mongoeco Python (see ``tests/support/mongo.py``).
Results: ``benchmarks/results/*.json``, ``benchmarks/RESULTS.md``, ``benchmarks/results/*.png``.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks import report
from benchmarks.common import missing_prerequisites

#: The receiving frameworks (``benchmarks/servers/<name>.py``); asgi is WebhookASGI under uvicorn.
RECEIVERS = ("tornado", "gevent", "twisted", "asgi", "aiohttp")
FIGURES = [
    "targets",
    "throughput",
    "latency",
    "receive",
    "instructions",
    "stores",
    "memory",
    "threads",
    "fleet",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("figure", choices=["all", "delivery", "report", *FIGURES])
    parser.add_argument("--quick", action="store_true", help="short runs (CI, a first look)")
    parser.add_argument(
        "--frameworks",
        default=",".join(RECEIVERS),
        help="the receivers measured (asgi: WebhookASGI under uvicorn; default: %(default)s)",
    )
    args = parser.parse_args(argv)
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    frameworks = args.frameworks.split(",")
    unknown = sorted(set(frameworks) - set(RECEIVERS))
    if unknown:
        parser.error(f"--frameworks: unknown {', '.join(unknown)} ({', '.join(RECEIVERS)})")
    wanted = set(
        FIGURES
        if args.figure == "all"
        else ["throughput", "latency"]
        if args.figure == "delivery"
        else []
        if args.figure == "report"
        else [args.figure]
    )
    missing = missing_prerequisites(wanted, frameworks)
    if missing:
        lines = "".join(f"\n  - {m}" for m in missing)
        parser.exit(2, f"python -m benchmarks: this machine lacks what the run needs:{lines}\n")
    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", flush=True)

    if "targets" in wanted:
        from benchmarks import targets

        log("0. the targets, interleaved")
        report.save("targets", targets.run(args.quick, log), command)
    if wanted & {"throughput", "latency"}:
        from benchmarks import delivery

        log("1-2. delivery: throughput and paced latency")
        previous = report.load().get("delivery", {})
        result = delivery.run(
            args.quick, "throughput" in wanted, "latency" in wanted, log, frameworks=frameworks
        )
        # A figure run alone keeps the other figure's last results.
        for part in ("throughput", "latency"):
            if part not in wanted and previous.get(part):
                result[part] = previous[part]
        report.save("delivery", result, command)
    if "receive" in wanted:
        from benchmarks import receive

        log("3. receive overhead under wrk")
        # Each framework's figure is self-contained (its skyhooks, bare and control servers
        # in the same rounds), so a run of some frameworks keeps the others' last figures,
        # each marked with the run it came from.
        kept = report.kept_frameworks(report.load().get("receive"))
        result = receive.run(args.quick, frameworks, log)
        result["frameworks"] = {**kept, **result["frameworks"]}
        report.save("receive", result, command)
    if "instructions" in wanted:
        from benchmarks import instructions

        log("3b. receive cost in instructions (callgrind)")
        report.save("instructions", instructions.run(args.quick, frameworks, log), command)
    if "stores" in wanted:
        from benchmarks import stores

        log("4. store scaling")
        report.save("stores", stores.run(args.quick, log), command)
    if "memory" in wanted:
        from benchmarks import memory

        log("5. memory per local subscription")
        report.save("memory", memory.run(args.quick, frameworks, log), command)
    if "threads" in wanted:
        from benchmarks import threads

        log("6. the blocking publisher: notify() from many threads, submit() from one")
        report.save("threads", threads.run(args.quick, log), command)
    if "fleet" in wanted:
        from benchmarks import fleet

        log("7. the fleet: one message's cost from 1 to 64 instances")
        report.save("fleet", fleet.run(args.quick, log), command)
    results = report.load()
    text = report.write_markdown(results)
    report.plots(results)
    print()
    print(text)
    log(f"done: {report.HERE / 'RESULTS.md'}, {report.RESULTS}/*.json, *.png")


if __name__ == "__main__":
    main()
