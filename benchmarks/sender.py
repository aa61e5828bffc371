"""The publishing side of the delivery benchmarks, in a process of its own.

    python -m benchmarks.sender KIND PLAN_JSON

KIND is a skyhooks publisher (``blocking``, ``tornado``, ``gevent``, ``twisted``, ``asyncio``; ``submit``:
the blocking publisher's ``submit`` from one thread) or
a baseline (``raw``: an asyncio HTTP/1.1 keep-alive client POSTing the same signed
bytes; ``redis``: redis-py ``PUBLISH``, unpipelined; ``socketio``: python-socketio's
write-only ``RedisManager`` emitter). PLAN (JSON) holds ``mode`` (``throughput`` or
``latency``), ``targets`` (each: ``label``, ``keys``, ``tallies``: the receivers'
``/tally`` base URLs, one per receiving instance; ``urls`` for raw; ``channel``
for redis/socketio), and ``seconds``/``in_flight``/``batch`` or ``rate``/``count``,
``store``, ``secret``, ``redis_port``.

Deliveries are counted at the receivers' callbacks, never here: a target's run ends
when every receiver has counted every message sent (or after ``drain`` seconds;
whatever is missing is reported as ``lost``). One JSON line per target on stdout.
"""

import sys

if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "gevent":
    from gevent import monkey

    monkey.patch_all()

import functools
import gc
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

DATA = {"progress": 50, "step": "resizing images"}
POSTS = [0]  # HTTP requests a skyhooks publisher made since the run began (coalescing shows here)


def tally_get(base: str, what: str) -> Any:
    with urllib.request.urlopen(f"{base}/{what}", timeout=10) as response:
        return json.loads(response.read())


def counts(target: dict[str, Any]) -> int:
    return sum(tally_get(base, "count") for base in target["tallies"])


def drain(target: dict[str, Any], before: int, expected: int, limit: float) -> tuple[int, float]:
    """Wait until the receivers counted *expected* more callbacks; (counted, when)."""
    deadline = time.monotonic() + limit
    while True:
        got = counts(target) - before
        now = time.monotonic()
        if got >= expected or now > deadline:
            return got, now
        time.sleep(0.005)


def message_data(mode: str, i: int) -> dict[str, Any]:
    return {**DATA, "i": i, "t": time.time()} if mode == "latency" else DATA


# -- one kind of sender each: (send(target, data) -> messages sent, style) --------------


def make_sender(kind: str, plan: dict[str, Any]) -> tuple[Callable[..., Any], Callable[[], Any], str]:
    """(send, close, style); style says how to run many sends at once:
    ``threads``, ``greenlets``, ``asyncio`` or ``twisted`` (send returns an awaitable)."""
    batch = plan.get("batch", 1)
    if kind == "submit":
        return submitter(plan)
    if kind in ("blocking", "gevent", "tornado", "twisted", "asyncio"):
        if kind == "blocking":
            from skyhooks import Publisher
        elif kind == "gevent":
            from skyhooks.gevent import Publisher
        elif kind == "tornado":
            from skyhooks.tornado import Publisher
        elif kind == "asyncio":
            from skyhooks.asyncio import Publisher
        else:
            from skyhooks.twisted import Publisher
        publisher = Publisher(plan["store"], plan["secret"], **plan.get("options", {}))
        count_posts(publisher)
        if batch > 1:
            if not hasattr(publisher, "notify_many"):
                raise SystemExit(f"{kind} publisher has no notify_many yet")
            send = lambda target, data: publisher.notify_many([(target["keys"], data)] * batch)  # noqa: E731
        else:
            send = lambda target, data: publisher.notify(target["keys"], data)  # noqa: E731
        style = {
            "blocking": "threads",
            "gevent": "greenlets",
            "tornado": "asyncio",
            "asyncio": "asyncio",
            "twisted": "twisted",
        }[kind]
        # The asyncio publisher's aclose waits, on its loop, until its connections are closed.
        return send, publisher.aclose if kind == "asyncio" else publisher.close, style
    if kind == "raw":
        return RawClient(plan["secret"]).send, lambda: None, "asyncio"
    if kind == "redis":
        import redis

        client = redis.Redis(port=plan["redis_port"])

        def publish(target: dict[str, Any], data: Any) -> None:
            client.publish(target["channel"], json.dumps({"keys": target["keys"], "data": data}))

        return publish, client.close, "threads"
    if kind == "socketio":
        import socketio

        managers: dict[str, Any] = {}

        def emit(target: dict[str, Any], data: Any) -> None:
            channel = target["channel"]
            if channel not in managers:
                managers[channel] = socketio.RedisManager(
                    f"redis://127.0.0.1:{plan['redis_port']}/0", channel=channel, write_only=True
                )
            managers[channel].emit("hook", {"keys": target["keys"], "data": data})

        return emit, lambda: None, "threads"
    raise SystemExit(f"unknown sender {kind!r}")


def count_posts(publisher: Any) -> None:
    """Count the POSTs *publisher* makes (coalescing shows in how few there are)."""
    post = publisher.transport.post

    def counted(*args: Any) -> Any:
        POSTS[0] += 1  # (threads may race on this count; it is a report, not a check)
        return post(*args)

    publisher.transport.post = counted


def submitter(plan: dict[str, Any]) -> tuple[Callable[..., Any], Callable[[], Any], str]:
    """The blocking publisher's ``submit`` from one thread, at most ``in_flight``
    unfinished (its ``max_pending``): many deliveries in flight from one thread."""
    from skyhooks import Publisher

    options = {**plan.get("options", {}), "max_pending": plan["in_flight"]}
    publisher = Publisher(plan["store"], plan["secret"], **options)
    count_posts(publisher)
    return (lambda target, data: publisher.submit(target["keys"], data)), publisher.close, "threads"


class RawClient:
    """HTTP/1.1 POSTs over asyncio streams, one keep-alive connection per URL per
    concurrent sender, nothing else: the floor for sending these bytes in Python."""

    def __init__(self, secret: str) -> None:
        from skyhooks.core.wire import Signer

        self.signer = Signer(secret)
        self.idle: dict[str, list[Any]] = {}

    async def post(self, url: str, head: bytes, body: bytes) -> None:
        import asyncio

        pool = self.idle.setdefault(url, [])
        if pool:
            reader, writer = pool.pop()
        else:
            host, port = url.split("/")[2].split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        headers = await reader.readuntil(b"\r\n\r\n")
        at = headers.lower().find(b"content-length:")
        await reader.readexactly(int(headers[at + 15 : headers.find(b"\r\n", at)]))
        if not headers.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(headers.decode())
        pool.append((reader, writer))

    async def send(self, target: dict[str, Any], data: Any) -> None:
        import asyncio

        message = self.signer.build(target["keys"], data)
        path = "/" + target["urls"][0].split("/", 3)[3]
        headers = "".join(
            f"{k}: {v}\r\n" for k, v in message.headers.items() if k.lower() != "content-length"
        )
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: ".encode()
        await asyncio.gather(*(self.post(url, head, message.body) for url in target["urls"]))


# -- drivers -------------------------------------------------------------------------------


def run_blocking(send: Callable[..., Any], style: str, plan: dict[str, Any], target: dict[str, Any]) -> int:
    """Throughput: in_flight threads/greenlets sending for plan seconds; messages sent."""
    seconds, n = plan["seconds"], plan["in_flight"] if style == "greenlets" else plan.get("threads", 1)
    stop = time.monotonic() + seconds
    done = [0] * n

    def loop(i: int) -> None:
        while time.monotonic() < stop:
            send(target, DATA)
            done[i] += 1

    if style == "greenlets":
        import gevent

        gevent.joinall([gevent.spawn(loop, i) for i in range(n)], raise_error=True)
    else:
        threads = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return sum(done)


async def run_async(
    send: Callable[..., Any], gather: Callable[..., Any], plan: dict[str, Any], target: dict[str, Any]
) -> int:
    stop = time.monotonic() + plan["seconds"]
    done = 0

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await send(target, DATA)
            done += 1

    await gather([loop() for _ in range(plan["in_flight"])])
    return done


def paced_blocking(send: Callable[..., Any], style: str, plan: dict[str, Any], target: dict[str, Any]) -> int:
    """Latency: one message every 1/rate s, each sent at its due time (late ones at once)."""
    spawn = None
    if style == "greenlets":
        import gevent

        spawn, sleep = gevent.spawn, gevent.sleep
    else:
        sleep = time.sleep
    started, jobs = time.monotonic(), []
    for i in range(plan["count"]):
        delay = started + i / plan["rate"] - time.monotonic()
        if delay > 0:
            sleep(delay)
        if spawn is not None:
            jobs.append(spawn(send, target, message_data("latency", i)))
        else:
            send(target, message_data("latency", i))
    if jobs:
        import gevent

        jobs[-1].join()  # the last send first (see paced_async)
        gevent.joinall(jobs, raise_error=True)
    return plan["count"]


async def paced_async(
    send: Callable[..., Any],
    sleep: Callable[[float], Any],
    gather: Callable[..., Any],
    plan: dict[str, Any],
    target: dict[str, Any],
    start: Callable[[Any], Any],
) -> int:
    """Latency, open loop: each send starts at its due time (*start* schedules it)
    whether or not earlier ones have finished."""
    started, pending = time.monotonic(), []
    for i in range(plan["count"]):
        delay = started + i / plan["rate"] - time.monotonic()
        if delay > 0:
            await sleep(delay)
        pending.append(start(send(target, message_data("latency", i))))
    # The last send first: setting up a gather of thousands of sends takes the
    # loop 10-30 ms, which the last message waited for (its latency alone, the
    # maximum of every run, was that).
    await pending[-1]
    await gather(pending)
    return plan["count"]


def begin(target: dict[str, Any]) -> int:
    """Start counting a run: the receivers' counts so far."""
    POSTS[0] = 0
    # What start-up made (imports: ~50k objects in a Twisted sender) waits for
    # the first full collection, 15-25 ms here; have it now, not mid-run as a
    # late message. Every sender does, the baselines' too.
    gc.collect()
    return counts(target)


def measure(plan: dict[str, Any], target: dict[str, Any], run: Callable[[], int]) -> dict[str, Any]:
    before = begin(target)
    started = time.monotonic()
    return finish(plan, target, before, started, run())


def warm(send_now: Callable[[dict[str, Any]], Any], target: dict[str, Any], plan: dict[str, Any]) -> None:
    """Send until the receivers count one message each: connections open, subscribers ready."""
    for _ in range(40):
        before = counts(target)
        send_now(target)
        got, _ = drain(target, before, len(target["tallies"]) * plan.get("batch", 1), 0.5)
        if got >= len(target["tallies"]):
            tally_reset(target)
            return
    raise SystemExit(f"{target['label']}: receivers never counted a warm-up message")


def tally_reset(target: dict[str, Any]) -> None:
    for base in target["tallies"]:
        tally_get(base, "latencies")


def main() -> None:
    kind, plan = sys.argv[1], json.loads(sys.argv[2])
    send, close, style = make_sender(kind, plan)
    latency = plan["mode"] == "latency"
    out = []
    if style in ("threads", "greenlets"):
        for target in plan["targets"]:
            warm(lambda t: send(t, DATA), target, plan)
            if latency:
                out.append(measure(plan, target, lambda: paced_blocking(send, style, plan, target)))  # noqa: B023
            else:
                out.append(measure(plan, target, lambda: run_blocking(send, style, plan, target)))  # noqa: B023
        close()
    elif style == "asyncio":
        import asyncio

        async def gather(aws: list[Any]) -> Any:
            return await asyncio.gather(*aws)

        async def go() -> None:
            loop = asyncio.get_running_loop()
            for target in plan["targets"]:
                # The blocking tally reads run in a thread so the loop keeps serving sends.
                await loop.run_in_executor(
                    None,
                    warm,
                    lambda t: asyncio.run_coroutine_threadsafe(send(t, DATA), loop).result(),
                    target,
                    plan,
                )
                if latency:
                    run = functools.partial(
                        paced_async, send, asyncio.sleep, gather, plan, target, asyncio.ensure_future
                    )
                else:
                    run = functools.partial(run_async, send, gather, plan, target)
                out.append(await measure_async(plan, target, run))
            closing = close()
            if closing is not None:
                await closing

        async def measure_async(plan: dict[str, Any], target: dict[str, Any], run: Any) -> dict[str, Any]:
            before = begin(target)
            started = time.monotonic()
            return finish(plan, target, before, started, await run())

        asyncio.run(go())
    else:  # twisted
        from twisted.internet import defer, reactor, task, threads

        def gather(aws: list[Any]) -> Any:
            return defer.gatherResults(
                [defer.ensureDeferred(a) if not isinstance(a, defer.Deferred) else a for a in aws],
                consumeErrors=True,
            )

        def sleep(seconds: float) -> Any:
            return task.deferLater(reactor, seconds, lambda: None)

        async def go(_reactor: Any) -> None:
            for target in plan["targets"]:
                await threads.deferToThread(
                    warm,
                    lambda t: threads.blockingCallFromThread(reactor, lambda: send(t, DATA)),
                    target,
                    plan,
                )
                before = begin(target)
                started = time.monotonic()
                if latency:
                    sent = await defer.ensureDeferred(
                        paced_async(send, sleep, gather, plan, target, defer.ensureDeferred)
                    )
                else:
                    sent = await defer.ensureDeferred(run_async(send, gather, plan, target))
                out.append(await threads.deferToThread(finish, plan, target, before, started, sent))
            await close()

        task.react(lambda r: defer.ensureDeferred(go(r)))


def finish(
    plan: dict[str, Any], target: dict[str, Any], before: int, started: float, sent: int
) -> dict[str, Any]:
    fanout = len(target["tallies"])
    sent *= plan.get("batch", 1)
    sent_at = time.monotonic()
    got, finished = drain(target, before, sent * fanout, plan.get("drain", 15.0))
    result: dict[str, Any] = {
        "label": target["label"],
        "sent": sent,
        "fanout": fanout,
        "expected": sent * fanout,
        "delivered": got,
        "lost": sent * fanout - got,
        "send_seconds": sent_at - started,
        "seconds": finished - started,
        "rate": got / (finished - started),
        "posts": POSTS[0],
    }
    if plan["mode"] == "latency":
        result["latencies"] = [x for base in target["tallies"] for x in tally_get(base, "latencies")]
    # Printed here: twisted's task.react exits the process when its reactor stops.
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
