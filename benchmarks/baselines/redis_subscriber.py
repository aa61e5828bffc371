"""Baseline receiver: a redis-py pub/sub subscriber whose callback parses each message.

    python -m benchmarks.baselines.redis_subscriber --redis-port P --channels a,b

Serves ``GET /tally/count`` and ``/tally/latencies`` (see ``benchmarks.servers._tally``)
from a side thread; the subscriber loop and its callback run in the main thread.
"""

from __future__ import annotations

import argparse
import http.server
import threading

import redis

from benchmarks.servers._tally import Tally, announce


def serve_tally(tally: Tally) -> int:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = tally.answer(self.path.rsplit("/", 1)[-1]) or b""
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--channels", required=True)
    args = parser.parse_args()
    tally = Tally()
    client = redis.Redis(port=args.redis_port)
    pubsub = client.pubsub(ignore_subscribe_messages=True)

    def on_message(message: dict) -> None:
        tally.parsed(message["data"])

    pubsub.subscribe(**{channel: on_message for channel in args.channels.split(",")})
    pubsub.get_message(timeout=1.0)  # the subscribe confirmation: subscribed from here on
    announce(serve_tally(tally))
    while True:
        pubsub.get_message(timeout=1.0)


if __name__ == "__main__":
    main()
