"""The demo's background job: a separate process, as a Celery worker would be.

``python -m skyhooks.demo.worker --store URL --secret S --account 42``

Publishes a few progress steps and a result for the account through the
blocking ``skyhooks.Publisher``; after each, a small ``report`` message carries
that message's delivery report (how many callbacks it reached) to the same pages.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .. import Publisher, SkyhooksError
from ._common import add_store_and_secret


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m skyhooks.demo.worker", description=__doc__)
    add_store_and_secret(parser)
    parser.add_argument("--account", required=True)
    parser.add_argument("--task", default="task")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    keys = {"account_id": args.account}
    started = time.monotonic()

    with Publisher(store=args.store, secret=args.secret) as publisher:

        def publish(data: dict[str, Any]) -> None:
            report = publisher.notify(keys, {"task": args.task, **data})
            publisher.notify(
                keys,
                {
                    "task": args.task,
                    "kind": "report",
                    "ref": report.message_id,
                    "notified": report.notified,
                    "failed": len(report.failed),
                },
            )
            print(
                f"worker {args.task} account {args.account}: {data['kind']} notified "
                f"{report.notified} callback(s) on {len(report.delivered)} instance(s)"
                + (f", failed {dict(report.failed)}" if report.failed else ""),
                flush=True,
            )

        for step in range(1, args.steps + 1):
            publish({"kind": "progress", "step": step, "of": args.steps})
            time.sleep(args.interval)
        elapsed = time.monotonic() - started
        publish({"kind": "result", "text": f"done: {args.steps} steps in {elapsed:.1f} s"})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except SkyhooksError as exc:  # the store is unreachable: say so, as a job log would
        print(f"worker: error: {exc}", file=sys.stderr)
        sys.exit(1)
