"""The fastest plain receiver we run: an asyncio Protocol that parses every POST's
JSON body and answers ``200 {"status":"ok","notified":1}`` on a keep-alive
connection; ``GET /tally/latencies`` answers the send-to-arrival times (see
``benchmarks.servers._tally``), any other GET the number of POSTs parsed. The
raw HTTP baseline's server, and a publisher benchmark's sink.

    python -m benchmarks.raw_receiver [--port 0]   # prints LISTENING <port>
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from benchmarks.servers._tally import Tally, announce

REPLY_BODY = b'{"status":"ok","notified":1}'
REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(REPLY_BODY)).encode()
    + b"\r\n\r\n"
    + REPLY_BODY
)


TALLY = Tally()


class ReceiverProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None])
            total = end + 4 + length
            if len(self.buffer) < total:
                break
            method = head[: head.find(b" ")]
            request_body, self.buffer = self.buffer[end + 4 : total], self.buffer[total:]
            if method == b"post":
                TALLY.parsed(request_body)
                replies.append(REPLY)
            else:
                path = head[head.find(b" ") + 1 : head.find(b" ", head.find(b" ") + 1)]
                body = TALLY.answer("latencies" if path.endswith(b"/latencies") else "count") or b""
                replies.append(
                    b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
        if replies:
            self.transport.write(b"".join(replies))  # type: ignore[attr-defined]


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(ReceiverProtocol, "127.0.0.1", port)
    announce(server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
