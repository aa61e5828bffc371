"""The blocking publisher as a process (for running it inside a network namespace).

Reads one JSON request per line on stdin, ``{"keys": {...}, "retry": {...}}``, and
answers one JSON line: ``{"report": report.as_dict(), "elapsed": seconds}`` or
``{"error": "..."}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from skyhooks import Publisher, RetryPolicy, SkyhooksError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    publishers: dict[str, Publisher] = {}
    for line in sys.stdin:
        request = json.loads(line)
        spec = json.dumps(request.get("retry") or {}, sort_keys=True)
        if spec not in publishers:
            publishers[spec] = Publisher(args.store, args.secret, retry=RetryPolicy(**json.loads(spec)))
        started = time.monotonic()
        try:
            answer = {"report": publishers[spec].notify(request["keys"], request.get("data")).as_dict()}
        except SkyhooksError as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answer["elapsed"] = time.monotonic() - started
        print(json.dumps(answer), flush=True)
    for publisher in publishers.values():
        publisher.close()


if __name__ == "__main__":
    main()
