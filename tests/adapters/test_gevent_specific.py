"""What only the gevent adapter has: the monkey-patching check, store calls kept off
the hub (SQLite in the thread pool, pymongo cooperatively), blocking waits that block
one greenlet, a greenlet per callback, bounded body reads, TCP_NODELAY, and the
publisher's transport (geventhttpclient): failures mapped to their kinds, HTTPS,
timeouts that give their pooled connection back, and a forked child's own connections.

``skyhooks.gevent`` refuses to load into an unpatched process, and pytest's is not
patched, so each test runs one ``scenario_*`` function of this file in a fresh,
monkey-patched interpreter: ``python -m tests.adapters.test_gevent_specific <name>``.
The shared scenarios are in ``test_behaviour.py``.
"""

import os

if __name__ == "__main__" and os.environ.get("SKYHOOKS_GEVENT_UNPATCHED") != "1":
    from gevent import monkey

    monkey.patch_all()

# A scenario's process is patched above, before anything else is imported.
import json
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import urllib3

from skyhooks import Message, Topic, generate_secret
from skyhooks.core.wire import Signer
from tests.support.instances import Instance

REPO = Path(__file__).resolve().parent.parent.parent
A42 = {"account_id": 42}
T42 = Topic("account_id", "42")


def run_scenario(name: str, *args: str, patched: bool = True) -> str:
    env = {key: value for key, value in os.environ.items() if key != "SKYHOOKS_GEVENT_UNPATCHED"}
    if not patched:
        env["SKYHOOKS_GEVENT_UNPATCHED"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "tests.adapters.test_gevent_specific", name, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout + result.stderr
    return result.stdout


# -- importing ----------------------------------------------------------------------------


def test_importing_into_an_unpatched_process_says_how_to_fix_it():
    env = {key: value for key, value in os.environ.items() if key != "SKYHOOKS_GEVENT_UNPATCHED"}
    result = subprocess.run(
        [sys.executable, "-c", "import skyhooks.gevent"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "RuntimeError" in result.stderr and "monkey.patch_all()" in result.stderr, result.stderr
    assert "SKYHOOKS_GEVENT_UNPATCHED=1" in result.stderr


def test_unpatched_on_purpose_runs_every_store_call_in_the_thread_pool(tmp_path):
    run_scenario("unpatched", str(tmp_path / "hooks.db"), patched=False)


def scenario_unpatched(path: str) -> None:
    import gevent.monkey

    from skyhooks.core.stores.memory import MemoryStore
    from skyhooks.gevent import Publisher, Registry

    assert not gevent.monkey.is_module_patched("socket")
    hub_thread = native_thread()
    for store in (f"sqlite:///{path}", MemoryStore()):
        registry = Registry("http://127.0.0.1:9/skyhooks", store, generate_secret())
        threads = record_threads(registry.store, "renew", "remove_url")
        registry.start()
        assert registry.register(A42, print) is True
        assert registry.stop() is True
        assert threads and hub_thread not in threads, threads
    with Publisher("memory://", generate_secret()) as publisher:
        assert publisher.notify(A42, 1).urls == frozenset()
    # Sends go over gevent's own sockets even unpatched: a slow instance holds up
    # only the sending greenlet, and the hub ticks on meanwhile.
    import socket

    import gevent

    from skyhooks import RetryPolicy

    slow = socket.socket()  # (a plain socket: accepts, via the kernel, and never answers)
    slow.bind(("127.0.0.1", 0))
    slow.listen(4)
    url = f"http://127.0.0.1:{slow.getsockname()[1]}/skyhooks"
    policy = RetryPolicy(attempts=1, timeout=0.5, deadline=5)
    with Publisher("memory://", generate_secret(), retry=policy) as publisher:
        publisher.store.add(url, {T42}, 60)
        lags = lag_probe()
        report = publisher.notify(A42, 1)
        assert report.failed[url].startswith("timeout"), report
        gevent.sleep(0.05)  # the probe's tick that spanned the send lands
        assert len(lags) > 20 and max(lags) < 0.1, (len(lags), max(lags))
    slow.close()
    print("ok")


# -- store calls and waits ------------------------------------------------------------------


def test_greenlets_of_one_thread_share_its_sqlite_connections(tmp_path):
    run_scenario("sqlite_per_thread", str(tmp_path / "hooks.db"))


def scenario_sqlite_per_thread(path: str) -> None:
    """A gevent server runs each request in a new greenlet: patched threading.local
    once gave each its own SQLite connection, opened per message and never closed."""
    import gevent

    from skyhooks.core.stores.sqlite import SQLiteStore
    from skyhooks.gevent import Publisher

    store = SQLiteStore(path)
    store.add("http://127.0.0.1:9/skyhooks", {Topic("account_id", "7")}, ttl=60)
    publisher = Publisher(store, generate_secret())
    gevent.joinall([gevent.spawn(publisher.notify, A42, i) for i in range(50)], raise_error=True)
    gevent.joinall([gevent.spawn(store.lookup, {T42}) for _ in range(50)], raise_error=True)
    # the hub thread's two: one for lookup (and add), one for the publisher's lookup_nowait
    assert len(store._connections) == 2, len(store._connections)
    print("ok")


def test_sqlite_calls_run_in_the_thread_pool_and_a_locked_file_never_stalls_the_hub(tmp_path):
    run_scenario("sqlite_locked", str(tmp_path / "hooks.db"))


def scenario_sqlite_locked(path: str) -> None:

    from skyhooks.core.stores.sqlite import SQLiteStore
    from skyhooks.gevent import Registry

    hub_thread = native_thread()
    store = SQLiteStore(path)
    store.lookup({T42})  # creates the schema
    registry = Registry("http://127.0.0.1:9/skyhooks", store, generate_secret())
    threads = record_threads(store, "renew", "add")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock, in effect
    lags = lag_probe()
    registry.start()
    started = time.monotonic()
    assert registry.register(A42, print, timeout=0.5) is False  # sqlite3 waits for the lock meanwhile
    assert 0.45 < time.monotonic() - started < 2
    assert max(lags) < 0.1, max(lags)  # the hub ticked on while sqlite3 waited
    blocker.execute("ROLLBACK")
    assert registry.register({"account_id": 7}, print, timeout=15) is True
    assert store.lookup({T42}) == {registry.url: frozenset({T42})}
    assert threads and hub_thread not in threads, threads
    assert registry.stop() is True
    print("ok")


def test_store_calls_that_yield_stay_in_the_hub_and_block_only_the_calling_greenlet():
    run_scenario("waits")


def scenario_waits() -> None:
    import gevent

    from skyhooks.core.stores.memory import MemoryStore
    from skyhooks.core.stores.mongodb import MongoStore
    from skyhooks.gevent import Registry

    # pymongo's sockets are gevent's here, bound to this hub: it must not go to a thread,
    # and it says so as the memory store does, whose calls stay in the hub's thread below.
    assert MongoStore.blocks_natively is MemoryStore.blocks_natively is False

    store = MemoryStore()
    slow_add = store.add

    def add(*args: Any) -> None:
        gevent.sleep(0.3)  # a store call that yields, as pymongo's do once patched
        slow_add(*args)

    store.add = add  # type: ignore[method-assign]
    threads = record_threads(store, "add")
    registry = Registry("http://127.0.0.1:9/skyhooks", store, generate_secret())

    # Before start() nothing waits (the store is written then), so this cannot deadlock at import time.
    started = time.monotonic()
    assert registry.register(A42, print) is False
    assert time.monotonic() - started < 0.05
    registry.start()

    # From the hub itself nothing may block: the change is made and the call returns.
    from_hub: list[bool] = []
    gevent.get_hub().loop.run_callback(lambda: from_hub.append(registry.register({"b": 1}, print)))
    gevent.sleep(0.01)
    assert from_hub == [False]

    ticks = lag_probe()
    started = time.monotonic()
    assert registry.register({"c": 1}, print) is True  # waited for the yielding add
    assert time.monotonic() - started >= 0.25
    assert len(ticks) > 10  # other greenlets ran meanwhile
    assert registry.unregister({"c": 1}, print, timeout=0) is False  # not written yet, and did not wait
    assert threads == {native_thread()}, threads  # the hub's own thread
    assert registry.stop() is True
    assert store.lookup({T42}) == {}
    print("ok")


# -- dispatch and the WSGI app --------------------------------------------------------------------


def test_every_callback_runs_in_its_own_greenlet():
    run_scenario("callback_greenlets")


def scenario_callback_greenlets() -> None:
    import gevent

    from skyhooks.gevent import Registry

    secret = generate_secret()
    registry = Registry("http://127.0.0.1:9/skyhooks", "memory://", secret)
    got: list[str] = []

    def slow(message: Message) -> None:
        gevent.sleep(0.5)
        got.append("slow")

    registry.register(A42, slow)
    registry.register(A42, lambda message: got.append("fast"))
    message = Signer(secret).build(A42, None)
    started = time.monotonic()
    response = registry.handle_request("POST", message.headers, message.body)
    assert time.monotonic() - started < 0.1
    assert json.loads(response.body) == {"status": "ok", "notified": 2}
    assert got == ["fast"]  # started before the answer; the slow one is still sleeping
    gevent.sleep(0.6)
    assert got == ["fast", "slow"]
    print("ok")


def test_callback_greenlets_survive_anything_a_callback_does():
    run_scenario("callback_survival")


def scenario_callback_survival() -> None:
    import logging

    import gevent
    from greenlet import getcurrent

    from skyhooks.gevent import Registry

    logging.basicConfig(level=logging.CRITICAL)
    secret = generate_secret()
    registry = Registry("http://127.0.0.1:9/skyhooks", "memory://", secret)
    signer = Signer(secret)
    seen: list[Any] = []
    mode = {"kind": "plain"}

    def callback(message: Message) -> None:
        kind = mode["kind"]
        seen.append((kind, getcurrent()))
        if kind == "raise":
            raise RuntimeError("raises on purpose")
        if kind == "timeout":
            raise gevent.Timeout(0.01)  # a BaseException, as from an expired gevent.Timeout
        if kind == "block":
            gevent.sleep(0.05)
            seen.append(("woke", getcurrent()))

    def send() -> dict:
        message = signer.build(A42, None)
        return json.loads(registry.handle_request("POST", message.headers, message.body).body)

    registry.register(A42, callback)
    caller = getcurrent()
    for kind in ("plain", "raise", "timeout", "plain", "block", "plain", "plain"):
        mode["kind"] = kind
        started = time.monotonic()
        assert send() == {"status": "ok", "notified": 1}, kind
        assert time.monotonic() - started < 0.04, kind  # a blocked callback never holds the answer
        assert getcurrent() is caller
        assert seen[-1][0] == kind  # each started before its answer
    kinds = [kind for kind, _ in seen]
    assert kinds == ["plain", "raise", "timeout", "plain", "block", "plain", "plain"]
    workers = [worker for _, worker in seen]
    assert caller not in workers and workers[5] is not workers[4]
    gevent.sleep(0.1)
    assert seen[-1] == ("woke", workers[4])  # the blocked one finished, in its own greenlet
    for _ in range(200):
        assert send()["notified"] == 1
    assert len(seen) == 8 + 200
    print("ok")


def test_a_caller_interrupted_while_its_callback_blocks_is_not_woken_later():
    run_scenario("interrupted_caller")


def scenario_interrupted_caller() -> None:
    """A caller interrupted (a kill, a gevent.Timeout) while its callback blocks goes on
    undisturbed: nothing switches into it later, which would break whatever it waits
    for next; the callback finishes in its own greenlet, and the next requests are served."""
    import gevent

    from skyhooks.gevent import Registry

    secret = generate_secret()
    registry = Registry("http://127.0.0.1:9/skyhooks", "memory://", secret)
    signer = Signer(secret)
    got: list[str] = []
    callers: list[Any] = []

    class Interrupted(Exception):
        pass

    def callback(message: Message) -> None:
        if message.data == "interrupt":
            callers[0].kill(Interrupted, block=False)  # queued on the hub; then this blocks
            gevent.sleep(0.05)
        got.append(str(message.data))

    def post(data: str) -> dict:
        message = signer.build(A42, data)
        return json.loads(registry.handle_request("POST", message.headers, message.body).body)

    def interrupted_caller() -> str:
        try:
            post("interrupt")
            gevent.sleep(0.2)  # the kill lands here if it did not land in post()
        except Interrupted:
            pass
        gevent.sleep(0.2)  # a stray switch would end this with an InvalidSwitchError
        return "slept"

    registry.register(A42, callback)
    callers.append(gevent.spawn(interrupted_caller))
    callers[0].join(2)
    assert callers[0].successful() and callers[0].value == "slept", callers[0].exception
    assert got == ["interrupt"], got  # the blocked callback finished, in its own greenlet
    assert [post(str(n))["notified"] for n in range(3)] == [1] * 3
    assert got == ["interrupt", "0", "1", "2"], got
    print("ok")


def test_the_app_reads_at_most_one_byte_over_the_limit():
    run_scenario("bounded_reads")


def scenario_bounded_reads() -> None:
    from skyhooks.gevent import Registry, WebhookApp, WSGIServer

    secret = generate_secret()
    registry = Registry("http://127.0.0.1:9/skyhooks", "memory://", secret, max_body_size=1000)
    app = WebhookApp(registry)
    reads: list[int] = []

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.input"] = CountingInput(environ["wsgi.input"], reads)
        return app(environ, start_response)

    server = WSGIServer(("127.0.0.1", 0), counting, log=None)
    server.start()
    signer = Signer(secret)

    def ask(extra_head: str = "", body: bytes | None = None) -> tuple[int, str]:
        """Send one request; with no *body*, a valid signed one, chunked."""
        message = signer.build(A42, "x")
        head = "".join(f"{name}: {value}\r\n" for name, value in message.headers.items())
        if body is None:
            body, extra_head = chunked(message.body), "Transfer-Encoding: chunked\r\n"
        reads.clear()
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as sock:
            sock.sendall(f"POST /skyhooks HTTP/1.1\r\nHost: x\r\n{head}{extra_head}\r\n".encode() + body)
            answer = sock.recv(65536).decode("latin-1")
        return int(answer.split()[1]), answer

    assert ask()[0] == 200
    status, answer = ask("Content-Length: 5000\r\n", b"x" * 5000)
    assert status == 413 and sum(reads) == 0 and "Connection: close" in answer, answer
    status, answer = ask("Transfer-Encoding: chunked\r\n", chunked(b"y" * 5000))
    assert status == 413 and sum(reads) == 1001 and "Connection: close" in answer, (answer, reads)
    assert ask("Transfer-Encoding: chunked\r\n", b"zz\r\nnot hex\r\n")[0] == 400  # bad chunking
    assert ask("", b"")[0] == 401  # no length, no chunks: an empty body, refused by its signature
    server.stop()
    print("ok")


class CountingInput:
    def __init__(self, wrapped: Any, reads: list[int]) -> None:
        self.wrapped, self.reads = wrapped, reads

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.wrapped.read(size)
        self.reads.append(len(data))
        return data


def chunked(body: bytes, size: int = 700) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def test_small_webhooks_are_answered_without_nagle_delay(tmp_path):
    """urllib3 writes headers and body separately: without TCP_NODELAY on the server
    each such POST waits ~40 ms for a delayed ACK (printed as the baseline)."""
    secret = generate_secret()
    instance = Instance("gevent", f"sqlite:///{tmp_path / 'hooks.db'}", secret, log_dir=tmp_path).start()
    bare = subprocess.Popen(
        [sys.executable, "-m", "tests.adapters.test_gevent_specific", "bare_pywsgi"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert bare.stdout is not None
        bare_port = int(bare.stdout.readline().split()[1])
        instance.register(A42, "cb")
        http = urllib3.PoolManager(retries=False)
        signer = Signer(secret)

        def p50(url: str) -> float:
            times = []
            for _ in range(30):
                message = signer.build(A42, {"n": 1})
                started = time.perf_counter()
                response = http.request("POST", url, body=message.body, headers=dict(message.headers))
                times.append(time.perf_counter() - started)
                assert response.status == 200, response.data
            return statistics.median(times) * 1000

        ours, baseline = p50(instance.url), p50(f"http://127.0.0.1:{bare_port}/")
        print(
            f"p50 of a small signed POST: {ours:.2f} ms with skyhooks.gevent.WSGIServer, "
            f"{baseline:.2f} ms with a bare pywsgi.WSGIServer"
        )
        assert ours < 20
    finally:
        bare.kill()
        bare.wait()
        instance.kill()


def scenario_bare_pywsgi() -> None:
    from gevent.pywsgi import WSGIServer

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        json.loads(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    print(f"LISTENING {server.server_port}", flush=True)
    server.serve_forever()


# -- the publisher --------------------------------------------------------------------------------


def test_the_transport_maps_failures_to_kinds_and_passes_every_status_through():
    run_scenario("transport")


def scenario_transport() -> None:
    """geventhttpclient behind the publisher's transport, against real sockets."""
    from skyhooks.core.errors import TransportError
    from skyhooks.gevent import Publisher
    from tests.support.raw_http import RawServer, hanging_server
    from tests.support.receiver import refused_url

    headers = {"content-type": "application/json", "webhook-id": "msg_1"}
    ok = b'{"status":"ok","notified":1}'

    def reply(status: str = "200 OK", body: bytes = ok, extra: str = "") -> bytes:
        return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body

    def fails(url: str, timeout: float = 2) -> TransportError:
        try:
            transport.post(url, headers, b"{}", timeout)
        except TransportError as exc:
            return exc
        raise AssertionError("no TransportError")

    transport = Publisher("memory://", generate_secret()).transport
    with RawServer(lambda n, head, body: reply()) as server:  # one kept-alive connection
        for i in range(3):
            result = transport.post(server.url, headers, b'{"n":%d}' % i, 2)
            assert (result.status, result.body) == (200, ok)
        assert server.connections == 1
        head, body = server.requests[0]
        assert head.startswith(b"POST /hook?x=1 HTTP/1.1\r\n") and b"\r\nwebhook-id: msg_1" in head
        assert body == b'{"n":0}'
    answers = {
        1: reply("503 Busy", b"busy", "Retry-After: 7\r\n"),
        2: reply("302 Found", b"", "Location: http://127.0.0.1:9/elsewhere\r\n"),  # never followed
        3: reply("404 Not Found", b"gone"),
    }
    with RawServer(lambda n, head, body: answers[n]) as server:
        for status, body in [(503, b"busy"), (302, b""), (404, b"gone")]:
            result = transport.post(server.url, headers, b"{}", 2)
            assert (result.status, result.body) == (status, body)
        assert {name.lower(): value for name, value in result.headers.items()}["content-length"] == "4"
        assert len(server.requests) == 3
    with RawServer(lambda n, head, body: None if n == 2 else reply()) as server:  # drops the 2nd
        transport.post(server.url, headers, b"{}", 2)
        assert transport.post(server.url, headers, b"{}", 2).status == 200
        assert server.connections == 2 and len(server.requests) == 3  # the 2nd was sent again
    with RawServer(lambda n, head, body: None) as server:  # closes every connection unanswered
        assert fails(server.url).kind == "error" and len(server.requests) == 2  # resent once only
    with RawServer(lambda n, head, body: b"SMTP ready\r\n\r\n", close_after=1) as server:
        assert fails(server.url).kind == "error"
    sock, port = hanging_server()
    started = time.monotonic()
    exc = fails(f"http://127.0.0.1:{port}/", 0.3)
    assert exc.kind == "timeout" and time.monotonic() - started < 1.5, exc
    sock.close()
    assert fails(refused_url()).kind == "refused"
    transport.close()
    print("ok")


def test_the_publishers_client_verifies_https_on_gevent_sockets(tmp_path):
    run_scenario("https", str(tmp_path))


def scenario_https(directory: str) -> None:
    """A certificate the system trusts (here through SSL_CERT_FILE) is accepted, over
    one kept-alive connection; one it does not trust is an error, and nothing is sent."""
    from skyhooks.core.errors import TransportError
    from skyhooks.gevent import Publisher
    from tests.support.raw_http import RawServer, self_signed

    (Path(directory) / "trusted").mkdir()
    (Path(directory) / "other").mkdir()
    context, cert = self_signed(Path(directory) / "trusted")
    stranger, _ = self_signed(Path(directory) / "other")
    os.environ["SSL_CERT_FILE"] = str(cert)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    transport = Publisher("memory://", generate_secret()).transport
    with RawServer(lambda n, head, body: answer, tls=context) as server:
        assert server.url.startswith("https://")
        for _ in range(2):
            assert transport.post(server.url, {"webhook-id": "msg_1"}, b"{}", 2).status == 200
        assert server.connections == 1 and len(server.requests) == 2
    with RawServer(lambda n, head, body: answer, tls=stranger) as server:
        try:
            transport.post(server.url, {"webhook-id": "msg_1"}, b"{}", 2)
        except TransportError as exc:
            assert exc.kind == "error" and server.requests == [], exc
        else:
            raise AssertionError("an untrusted certificate was accepted")
    print("ok")


def test_a_timed_out_send_gives_its_pooled_connection_back():
    run_scenario("timeout_releases_connection")


def scenario_timeout_releases_connection() -> None:
    from skyhooks import RetryPolicy
    from skyhooks.gevent import Publisher
    from tests.support.receiver import Receiver

    with Receiver(script=["hang", 200]) as receiver:
        policy = RetryPolicy(attempts=1, timeout=0.3, deadline=5)
        # One connection per host: a leaked one would leave the next send waiting forever.
        with Publisher("memory://", generate_secret(), retry=policy, concurrency=1) as publisher:
            publisher.store.add(receiver.url, {T42}, 60)
            first = publisher.notify(A42, 1)
            assert first.failed[receiver.url].startswith("timeout"), first
            second = publisher.notify(A42, 2)
            assert second.delivered == frozenset({receiver.url}), second
    print("ok")


def test_a_forked_child_connects_anew_and_the_parent_keeps_its_connection():
    # gevent's own os.fork (patched): the fork-safety resets work with its sockets too.
    from tests.support.receiver import Receiver

    with Receiver() as receiver:  # here, unpatched: the child cannot have a copy of it
        run_scenario("fork", receiver.url)
        parent, child, parent_again = (request["peer"] for request in receiver.requests)
    assert child != parent
    assert parent_again == parent


def scenario_fork(url: str) -> None:
    from skyhooks.gevent import Publisher

    with Publisher("memory://", generate_secret()) as publisher:
        publisher.store.add(url, {T42}, 60)
        assert publisher.notify(A42, "parent").delivered == frozenset({url})
        pid = os.fork()
        if pid == 0:  # the child: no exit handlers, no with-block exit
            os._exit(0 if publisher.notify(A42, "child").delivered == frozenset({url}) else 1)
        _, status = os.waitpid(pid, 0)
        assert status == 0, f"the child's notify failed ({status})"
        assert publisher.notify(A42, "parent again").delivered == frozenset({url})
    print("ok")


# -- helpers for scenarios ---------------------------------------------------------------------------


def native_thread() -> int:
    import gevent.monkey

    return gevent.monkey.get_original("threading", "get_ident")()  # type: ignore[no-any-return]


def record_threads(store: Any, *methods: str) -> set[int]:
    """The native threads *store*'s *methods* run in, filled as they are called."""
    threads: set[int] = set()
    for name in methods:
        original = getattr(store, name)

        def wrapper(*args: Any, _original: Any = original) -> Any:
            threads.add(native_thread())
            return _original(*args)

        setattr(store, name, wrapper)
    return threads


def test_the_blocking_publishers_submit_refuses_greenlet_threads():
    run_scenario("submit_refused")


def scenario_submit_refused() -> None:
    # Its loop thread would be a greenlet; the gevent Publisher is the one to use.
    from skyhooks import Publisher, SkyhooksError

    with Publisher("memory://", generate_secret()) as publisher:
        try:
            publisher.submit(A42, 1)
        except SkyhooksError as exc:
            assert "skyhooks.gevent.Publisher" in str(exc), exc
        else:
            raise AssertionError("submit ran with threading patched")
        assert publisher.notify(A42, 1).urls == frozenset()  # notify is fine: sockets are cooperative
    print("ok")


def lag_probe(tick: float = 0.01) -> list[float]:
    """A greenlet appending each 10 ms tick's lateness, for as long as the process runs."""
    import gevent

    lags: list[float] = []

    def run() -> None:
        while True:
            started = time.monotonic()
            gevent.sleep(tick)
            lags.append(time.monotonic() - started - tick)

    gevent.spawn(run)
    gevent.sleep(tick * 3)
    return lags


if __name__ == "__main__":
    globals()[f"scenario_{sys.argv[1]}"](*sys.argv[2:])
