"""What only the Twisted adapter has: Clock-driven registry timers, the Publisher
against a ``WebhookResource`` in memory through ``treq.testing.StubTreq``, the
early 413 of ``WebhookRequest``, and treq's failures mapped to transport kinds.

Trial-style: ``twisted.trial.unittest`` test cases, which pytest runs as it runs
any ``unittest`` case (no plugin needed). ``SynchronousTestCase`` for everything
driven by a ``Clock``, where nothing may wait; ``TestCase`` (whose reactor trial
spins, and checks is left clean) for real sockets on 127.0.0.1.

Two fakes, because a ``Clock`` has no threads: ``InlineThreadPool`` runs each
store call at once on the calling thread, and ``FakeReactor`` is twisted's
``MemoryReactorClock`` plus a ``callFromThread`` that runs at once.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

pytest.importorskip("treq")

import itertools

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.iweb import IRequest
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.test.requesthelper import DummyChannel
from zope.interface import implementer
from zope.interface.verify import verifyObject

from skyhooks import IHookStore, Message, RetryPolicy, StoreError, Topic, generate_secret
from skyhooks.core.delivery import HTTPResult, ITransport
from skyhooks.core.stores.memory import MemoryStore
from skyhooks.core.wire import Signer
from skyhooks.twisted import Publisher, Registry, WebhookRequest, WebhookResource
from tests.support.twisted_fakes import FakeReactor, InlineThreadPool

SECRET = generate_secret()
URL = "http://instance.test/skyhooks"
A42 = {"account_id": 42}
T42 = Topic("account_id", "42")


class RecordingStore(MemoryStore):
    """A real MemoryStore that records when each write happened and can fail the next ``failures``."""

    def __init__(self, clock: FakeReactor, failures: int = 0) -> None:
        super().__init__(clock=clock.seconds)
        self.writes: list[tuple[str, float]] = []
        self.failures = failures  # -1: fail for ever

    def _write(self, name: str) -> None:
        self.writes.append((name, self._clock()))
        if self.failures:
            self.failures -= 1
            raise StoreError(f"{name} failed: store down (on purpose)")

    def renew(self, url: str, topics: Any, ttl: float) -> None:
        self._write("renew")
        super().renew(url, topics, ttl)

    def add(self, url: str, topics: Any, ttl: float) -> None:
        self._write("add")
        super().add(url, topics, ttl)

    def remove_url(self, url: str) -> int:
        self._write("remove_url")
        return super().remove_url(url)


def make_registry(store: Any, clock: FakeReactor, **options: Any) -> Registry:
    return Registry(URL, store, SECRET, reactor=clock, threadpool=InlineThreadPool(), **options)


class RegistryOnAClockTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = FakeReactor()

    def test_implementations_provide_their_interfaces(self) -> None:
        registry = make_registry("memory://", self.clock)
        publisher = Publisher("memory://", SECRET, reactor=self.clock, client=StubTreq(Resource()))
        verifyObject(IHookStore, registry.store)
        verifyObject(IHookStore, publisher.store)
        verifyObject(IResource, WebhookResource(registry))
        verifyObject(IRequest, WebhookRequest.for_registry(registry)(DummyChannel()))

    def test_renews_every_third_of_the_ttl(self) -> None:
        store = RecordingStore(self.clock)
        registry = make_registry(store, self.clock, ttl=30)
        registry.register(A42, lambda message: None)
        self.assertEqual(store.writes, [])  # nothing is written before start()
        registry.start()
        registry.start()  # idempotent: no second renewal timer
        self.clock.pump([5] * 12)
        self.assertEqual(
            store.writes,
            [
                ("renew", 0),
                ("renew", 10),
                ("renew", 20),
                ("renew", 30),
                ("renew", 40),
                ("renew", 50),
                ("renew", 60),
            ],
        )
        self.assertEqual(store.lookup({T42}), {URL: frozenset({T42})})

    def test_a_failing_store_is_retried_with_growing_backoff_and_heals(self) -> None:
        store = RecordingStore(self.clock, failures=3)
        registry = make_registry(store, self.clock, ttl=90)
        registry.start()
        done = registry.register(A42, lambda message: None)
        for _ in range(3):
            self.assertNoResult(done)  # it fires once the store has the topic, not before
            retry_at = min(call.getTime() for call in self.clock.getDelayedCalls())
            self.clock.advance(retry_at - self.clock.seconds())
        self.successResultOf(done)
        attempts = [time for _, time in store.writes]
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
        # backoff 0.5 s, 1 s, 2 s, each with jitter down to half
        for gap, ceiling in zip(gaps, (0.5, 1.0, 2.0), strict=True):
            self.assertTrue(ceiling / 2 <= gap <= ceiling, gaps)
        self.assertEqual([name for name, _ in store.writes], ["renew"] * 4)  # retries rewrite everything
        self.assertEqual(store.lookup({T42}), {URL: frozenset({T42})})

    def test_stop_removes_the_url_and_leaves_no_timer(self) -> None:
        store = RecordingStore(self.clock)
        registry = make_registry(store, self.clock)
        registry.register(A42, lambda message: None)
        registry.start()
        self.assertIs(self.successResultOf(registry.stop()), True)
        self.assertEqual(store.lookup({T42}), {})
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIs(self.successResultOf(registry.stop()), True)  # a second stop just agrees

    def test_stop_gives_up_after_stop_timeout_while_the_store_is_down(self) -> None:
        store = RecordingStore(self.clock, failures=-1)
        registry = make_registry(store, self.clock, stop_timeout=0.05)
        registry.start()
        stopped = registry.stop()
        self.clock.pump([0.1] * 10)
        self.assertIs(self.successResultOf(stopped), False)  # the subscriptions then expire by TTL
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_on_shutdown_makes_shutdown_wait_for_stop(self) -> None:
        registry = make_registry("memory://", self.clock)
        registry.stop_on_shutdown()
        self.assertEqual(self.clock.triggers["before"]["shutdown"], [(registry.stop, (), {})])

    def test_coroutine_and_deferred_callbacks_run_and_their_failures_are_logged(self) -> None:
        registry = make_registry("memory://", self.clock)
        gate: Deferred[None] = Deferred()
        got: list[str] = []

        async def waits(message: Message) -> None:
            await gate
            got.append(message.id)

        async def raises(message: Message) -> None:
            await gate
            raise RuntimeError("coroutine fails on purpose")

        registry.register(A42, waits)
        registry.register(A42, raises)
        registry.register(A42, lambda message: fail(ValueError("deferred fails on purpose")))
        with self.assertLogs("skyhooks.registry", "ERROR") as logs:
            self.assertEqual(registry.dispatch(Message(A42, None, "msg_1")), 3)
            self.assertEqual(got, [])
            gate.callback(None)
        self.assertEqual(got, ["msg_1"])
        errors = "\n".join(logs.output)
        self.assertIn("deferred fails on purpose", errors)
        self.assertIn("coroutine fails on purpose", errors)


class Scripted(Resource):
    """Answers each POST with the next status of *script* (the last one for ever); "hang" never answers."""

    isLeaf = True

    def __init__(self, script: list[Any]) -> None:
        super().__init__()
        self.script = script
        self.count = 0

    def render_POST(self, request: Any) -> Any:
        step = self.script[min(self.count, len(self.script) - 1)]
        self.count += 1
        if step == "hang":
            return NOT_DONE_YET
        request.setResponseCode(step)
        return b'{"status": "ok", "notified": 1}'


def test_lane_waiters_fire_at_once_and_never_nested() -> None:
    """A resolved waiter fires in the same reactor turn, not a later one (a lane's
    next POST must not wait for a turn), and one resolved by a firing waiter's
    flow fires after it, by the same loop: a chain of 3,000 stays at one depth."""
    import sys

    publisher = Publisher("memory://", SECRET, reactor=FakeReactor(), client=StubTreq(Resource()))
    waiters = [publisher._new_waiter() for _ in range(3000)]
    order: list[int] = []
    depths: set[int] = set()

    def depth() -> int:
        frame, n = sys._getframe(), 0
        while frame is not None:
            frame, n = frame.f_back, n + 1
        return n

    def fired(value: int) -> None:
        order.append(value)
        depths.add(depth())
        if value + 1 < len(waiters):
            waiters[value + 1][1](value + 1)  # resolves the next one from inside this firing

    for deferred, _ in waiters:
        deferred.addCallback(fired)
    waiters[0][1](0)
    assert order == list(range(3000))  # every one fired at once: no reactor turn ran
    assert len(depths) == 1, sorted(depths)[:3]


def test_a_lanes_next_batch_takes_the_messages_its_last_reply_set_going() -> None:
    """16 callers in a loop, one POST in flight: once the loop runs, every POST
    carries all 16 messages. Without lingering, the lead handed the lane with a
    reply would leave before the callers answered by it send again: POSTs of 1 and 15."""
    clock, carried = FakeReactor(), []

    @implementer(ITransport)
    class Delayed:  # replies a millisecond later, on the clock
        def post(self, url: str, headers: Any, body: bytes, timeout: float) -> Deferred[HTTPResult]:
            count = body.count(b'"id"') or 1
            carried.append(count)
            answer = b'{"status":"ok","notified":%d,"results":[%s]}' % (count, b",".join([b"1"] * count))
            return deferLater(clock, 0.001, HTTPResult, 200, {}, answer)

        def close(self) -> None:
            pass

    store = MemoryStore()
    store.add(URL, {T42}, ttl=60)
    publisher = Publisher(
        store, SECRET, transport=Delayed(), reactor=clock, threadpool=InlineThreadPool(), max_in_flight=1
    )
    sent = [0]

    def again(_: Any) -> None:
        if sent[0] < 800:
            sent[0] += 1
            publisher.notify(A42, sent[0]).addCallback(again)

    for _ in range(16):
        again(None)
    clock.pump([0.001] * 100)
    assert len(carried) > 40 and set(carried[1:-1]) == {16}, carried[:8]


class InMemoryRoundTripTests(SynchronousTestCase):
    """Publisher -> StubTreq -> WebhookResource -> callbacks, with no socket and no thread."""

    def setUp(self) -> None:
        self.clock = FakeReactor()
        self.store = MemoryStore(clock=self.clock.seconds)
        self.registry = make_registry(self.store, self.clock)
        self.root = Resource()
        self.root.putChild(b"skyhooks", WebhookResource(self.registry))
        self.stub = StubTreq(self.root)
        self.publisher = Publisher(
            self.store,
            SECRET,
            reactor=self.clock,
            client=self.stub,
            threadpool=InlineThreadPool(),
            retry=RetryPolicy(attempts=3, backoff=0.1, deadline=5, timeout=1),
        )

    def notify(self, keys: Any, data: Any) -> Any:
        notified = self.publisher.notify(keys, data)
        for _ in range(100):  # serve in-memory requests and time out / back off on the clock
            self.stub.flush()
            if notified.called:
                break
            self.clock.advance(0.05)
        return self.successResultOf(notified)

    def test_a_message_reaches_the_callbacks_and_the_report_says_so(self) -> None:
        got: list[Message] = []

        def record(message: Message) -> None:
            got.append(message)

        self.registry.register(A42, record)
        self.registry.register({"account_id": 42, "user_id": 7}, record)  # the same callback: runs once
        self.registry.register(A42, lambda message: None)
        self.registry.start()
        report = self.notify({"account_id": "42", "user_id": 1}, {"progress": 100})
        self.assertEqual(report.urls, {URL})
        self.assertEqual(report.delivered, {URL})
        self.assertEqual((report.failed, report.notified, report.pruned), ({}, 2, frozenset()))
        self.assertEqual(
            [(m.keys, m.data, m.id) for m in got],
            [({"account_id": "42", "user_id": 1}, {"progress": 100}, report.message_id)],
        )

    def test_dead_urls_are_pruned_and_5xx_retried_after_a_backoff_on_the_clock(self) -> None:
        flaky = Scripted([503, 200])
        self.root.putChild(b"flaky", flaky)
        gone, flaky_url = "http://instance.test/gone", "http://instance.test/flaky"
        self.root.putChild(b"gone", notFound())
        self.store.add(gone, {T42}, ttl=60)
        self.store.add(flaky_url, {T42}, ttl=60)
        report = self.notify(A42, "x")
        self.assertEqual(report.delivered, {flaky_url})
        self.assertEqual(flaky.count, 2)
        self.assertTrue(report.failed[gone].startswith("HTTP 404"), report.failed)
        self.assertEqual(report.pruned, {gone})
        self.assertEqual(set(self.store.lookup({T42})), {flaky_url})

    def test_a_hanging_receiver_times_out_on_the_clock(self) -> None:
        self.root.putChild(b"hangs", Scripted(["hang"]))
        self.store.add("http://instance.test/hangs", {T42}, ttl=60)
        report = self.notify(A42, "x")
        reason = report.failed["http://instance.test/hangs"]
        self.assertTrue(
            reason.startswith("timeout: no answer within 1.0s") and "3 attempts" in reason, reason
        )
        self.assertEqual(report.pruned, frozenset())  # a slow instance is not a dead one

    def test_bad_input_fails_the_deferred_before_anything_is_looked_up(self) -> None:
        self.store.add("http://instance.test/never", {T42}, ttl=60)
        self.failureResultOf(self.publisher.notify({"account_id": True}, 1), ValueError)
        self.failureResultOf(self.publisher.notify(A42, float("nan")), ValueError)

    def test_the_resource_answers_json_errors_for_any_method_and_size(self) -> None:
        registry = make_registry("memory://", self.clock, max_body_size=100)
        self.root.putChild(b"small", WebhookResource(registry))
        message = Signer(SECRET).build(A42, "y" * 200)
        for method, body, status in (("GET", b"", 405), ("DELETE", b"", 405), ("POST", message.body, 413)):
            response = self.successResultOf(
                self.stub.request(
                    method, "http://instance.test/small", data=body, headers=dict(message.headers)
                )
            )
            payload = json.loads(self.successResultOf(response.content()))
            self.assertEqual((response.code, payload["status"]), (status, "error"), payload)


class NeverAnswers(Protocol):
    """Accepts a connection and never says anything."""


class RealSocketTests(TestCase):
    """The real reactor, thread pool and treq, on 127.0.0.1."""

    def serve(self, store: Any, **options: Any) -> Registry:
        """A registry for a fresh port, its WebhookResource served there."""
        root = Resource()
        site = Site(root)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        registry = Registry(f"http://127.0.0.1:{port.getHost().port}/skyhooks", store, SECRET, **options)
        root.putChild(b"skyhooks", WebhookResource(registry))
        site.requestFactory = WebhookRequest.for_registry(registry)
        return registry

    def publisher(self, store: Any, **options: Any) -> Publisher:
        publisher = Publisher(store, SECRET, **options)
        self.addCleanup(publisher.close)
        return publisher

    async def test_publisher_delivers_to_a_registry_over_http(self) -> None:
        store = MemoryStore()
        registry = self.serve(store)
        got: list[Message] = []
        registry.start()
        await registry.register(A42, got.append)
        report = await self.publisher(store).notify(A42, {"done": True})
        self.assertEqual((report.delivered, report.notified), ({registry.url}, 1))
        self.assertEqual([m.data for m in got], [{"done": True}])
        self.assertIs(await registry.stop(), True)
        self.assertEqual(store.lookup({T42}), {})

    async def test_refused_and_hanging_receivers_map_to_transport_kinds(self) -> None:
        listener = reactor.listenTCP(0, Factory.forProtocol(NeverAnswers), interface="127.0.0.1")
        self.addCleanup(listener.stopListening)
        hanging = f"http://127.0.0.1:{listener.getHost().port}/skyhooks"
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            refused = f"http://127.0.0.1:{probe.getsockname()[1]}/skyhooks"
        store = MemoryStore()
        for url in (hanging, refused):
            store.add(url, {T42}, ttl=60)
        publisher = self.publisher(store, retry=RetryPolicy(attempts=2, backoff=0.01, deadline=3, timeout=1))
        report = await publisher.notify(A42, "x")
        self.assertTrue(report.failed[refused].startswith("refused"), report.failed)
        self.assertTrue(report.failed[hanging].startswith("timeout"), report.failed)
        self.assertEqual(report.pruned, {refused})
        # the cancelled connections must be gone before trial checks the reactor is clean
        await deferLater(reactor, 0.05, lambda: None)

    async def test_a_cancelled_caller_leaves_the_lane_moving(self) -> None:
        """A queued notify cancelled is not sent; a sending one cancelled hands
        what waits behind it to the next caller (the Deferred driver's cancel)."""
        from tests.support.receiver import Receiver

        def carried(request: dict[str, Any]) -> list[str]:
            payload = json.loads(request["body"])
            if "messages" in payload:
                return [m["id"] for m in payload["messages"]]
            return [{k.lower(): v for k, v in request["headers"].items()}["webhook-id"]]

        for cancel in ("queued", "lead"):
            with Receiver(["sleep:0.4", 200]) as receiver:
                store = MemoryStore()
                store.add(receiver.url, {T42}, ttl=60)
                publisher = self.publisher(
                    store, retry=RetryPolicy(attempts=1, deadline=5, timeout=2), max_in_flight=1
                )
                lead = publisher.notify(A42, "lead")
                await deferLater(reactor, 0.1, lambda: None)
                queued = [publisher.notify(A42, i) for i in range(3)]
                await deferLater(reactor, 0.05, lambda: None)
                (lead if cancel == "lead" else queued[0]).cancel()
                results = []
                for notified in (lead, *queued):
                    try:
                        results.append(await notified)
                    except CancelledError as exc:
                        results.append(exc)
                await deferLater(reactor, 0.45, lambda: None)  # the lead's abandoned POST ends
                posts = [carried(request) for request in receiver.requests]
            if cancel == "queued":
                self.assertIsInstance(results[1], CancelledError)
                self.assertTrue(results[0].ok and results[2].ok and results[3].ok)
                self.assertEqual(
                    posts, [[results[0].message_id], [results[2].message_id, results[3].message_id]]
                )
            else:
                self.assertIsInstance(results[0], CancelledError)
                self.assertTrue(all(report.ok for report in results[1:]))
                self.assertEqual(sorted(posts[1]), sorted(report.message_id for report in results[1:]))

    async def test_a_declared_oversized_body_is_answered_413_from_the_headers(self) -> None:
        registry = self.serve(MemoryStore(), max_body_size=1000)
        port = int(registry.url.split(":")[2].split("/")[0])
        message = Signer(SECRET).build(A42, "x")
        head = "".join(f"{name}: {value}\r\n" for name, value in message.headers.items())
        request = (
            f"POST /skyhooks HTTP/1.1\r\nHost: x\r\n{head}Content-Length: 10000000\r\n"
            "Expect: 100-continue\r\n\r\n"
        ).encode()

        def exchange() -> bytes:
            # Only the headers go out: an answer can only come from the headers.
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(request)
                answer = b""
                while b"}" not in answer:
                    answer += sock.recv(4096) or b"}"
                return answer

        answer = (await deferToThread(exchange)).decode("latin-1")
        self.assertTrue(answer.startswith("HTTP/1.1 413 "), answer)
        self.assertNotIn("100 Continue", answer)
        self.assertIn("Connection: close", answer)
        self.assertIn('"error": "body of 10000000 bytes is over the limit of 1000"', answer)
