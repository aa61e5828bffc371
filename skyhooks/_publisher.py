"""``skyhooks.Publisher``: the blocking publisher, for code with no event loop.

A Celery task, a cron script, a WSGI view. ``notify`` runs in the calling
thread: requests go over a small keep-alive HTTP/1.1 client on blocking
sockets (``skyhooks/_blocking_http.py``), one pool of idle connections per
instance shared by the calling threads; fan-out to several instances runs in a
thread pool. ``submit`` hands the delivery to an asyncio loop in a thread of
the publisher's own (``skyhooks/_background.py``) and returns a future at
once, so one thread can keep many deliveries in flight. ``notify`` calls
beyond the first few at once queue and travel together (``_Crowd``).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ._background import BackgroundLoop
from ._blocking_http import BlockingHttp1Pool
from .core.delivery import HTTPResult, Send, run_async, run_sync
from .core.errors import SkyhooksError
from .core.forks import reset_in_child
from .core.keys import Keys
from .core.protocol import EncodedMessage
from .core.publisher import SyncPublisher, _Waiter
from .core.values import DeliveryReport

__all__ = ["Publisher"]

#: ``notify`` calls that each deliver their own message at once; calls beyond
#: them queue and travel together (see ``Publisher.notify``). Four: with up to
#: four threads, queueing gained nothing; past that, threads each delivering
#: for themselves stopped gaining (``python -m benchmarks threads``).
INLINE_NOTIFIES = 4


class Publisher(SyncPublisher):
    """Publish to every instance listening for a message's keys, and report.

    >>> publisher = Publisher(store="sqlite:////var/lib/app/hooks.db", secret="whsec_...")
    >>> report = publisher.notify({"account_id": 42}, {"progress": 100})
    >>> report.delivered, report.failed, report.notified

    Thread-safe: one publisher can serve every thread of a process. Raises
    ``ValueError`` (``InvalidKeysError``/``InvalidDataError``) for bad input and
    :class:`skyhooks.StoreError` when the store cannot be read, before sending
    anything; every other failure is in the report.

    ``max_pending`` bounds :meth:`submit`: with that many submitted messages
    not yet delivered (or failed), ``submit`` waits for one to finish first.
    """

    def __init__(self, store: Any, secret: str | bytes, *, max_pending: int = 1000, **options: Any) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        super().__init__(store, secret, **options)
        self._http = BlockingHttp1Pool(self.concurrency)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self.max_pending = max_pending
        # submit()'s side: an asyncio publisher on a loop thread, made there once
        # per process, sharing this one's store object (thread-safe, and not the
        # loop's to close) and options.
        self._loop_args = (secret, {**options, "max_in_flight": self.max_in_flight})
        self._background: BackgroundLoop[Any, EncodedMessage, DeliveryReport] = BackgroundLoop(
            self._loop_publisher, _deliver, _close_loop_publisher, "skyhooks-submit"
        )
        self._submitted_lock = threading.Lock()
        self._submitted: set[Future[Any]] = set()
        self._pending = threading.BoundedSemaphore(max_pending)
        self._notifying_lock = threading.Lock()
        self._notifying = 0  # notify calls unfinished
        self._crowd = _Crowd(self._deliver_encoded)
        reset_in_child(self)

    def _after_fork(self) -> None:
        # A forked child has none of its parent's threads: not their notify
        # calls, submissions or pool workers (an executor that counts its dead
        # workers as idle would never start one), nor the locks they held.
        self._executor, self._executor_lock = None, threading.Lock()
        self._submitted_lock, self._submitted = threading.Lock(), set()
        self._pending = threading.BoundedSemaphore(self.max_pending)
        self._notifying_lock, self._notifying = threading.Lock(), 0
        self._crowd = _Crowd(self._deliver_encoded)

    def notify(self, keys: Keys, data: Any) -> DeliveryReport:
        """Deliver *data* to every callback listening for any of *keys*, and report.

        Runs in the calling thread. While ``INLINE_NOTIFIES`` other calls are
        unfinished, the message joins a queue instead, and the calls queued
        together travel together: one of their threads delivers them all (one
        store lookup, one POST per instance, through the same lanes, so
        ``max_in_flight`` still bounds the POSTs) while the others wait for
        their reports. Threads each delivering for itself would queue for the
        GIL and for each instance's lane one message at a time. Either way the
        report, the errors raised and the message on the wire are the same.
        """
        crowded = self._enter_notify()
        try:
            if not crowded:
                return super().notify(keys, data)
            return self._crowd.notify(self._signer.encode(keys, data))  # bad input raises here
        finally:
            self._leave_notify()

    def _enter_notify(self) -> bool:
        """Count this call in; whether INLINE_NOTIFIES others are unfinished."""
        with self._notifying_lock:
            count = self._notifying
            self._notifying = count + 1
        return count >= INLINE_NOTIFIES

    def _leave_notify(self) -> None:
        with self._notifying_lock:
            self._notifying -= 1

    def _deliver_encoded(self, messages: Sequence[EncodedMessage]) -> list[DeliveryReport]:
        return run_sync(self._flow_of(messages), self._perform)

    def submit(self, keys: Keys, data: Any) -> Future[DeliveryReport]:
        """Start delivering *data* to every callback listening for any of *keys*,
        and return at once: a ``concurrent.futures.Future`` of the report.

        For a task that sends many messages and need not wait for each one:
        ``futures = [publisher.submit(keys, step) for step in steps]``, then
        ``[f.result() for f in futures]`` (or ``concurrent.futures.wait``).
        What is submitted while earlier submissions are still being handled
        travels together: one store lookup, one POST per instance (a batch),
        each message with its own id and report, so one thread sending
        thousands of messages pays about what ``notify_many`` costs; one
        submitted alone goes at once. (``notify`` from many threads queues its
        crowd too, but each of those threads waits for its own report.) Submitted
        deliveries keep lanes of their own: with ``notify`` and ``submit`` used
        at once, an instance may get up to twice ``max_in_flight`` POSTs.

        Bad keys or data raise here, before anything is sent; a store that
        cannot be read fails the future with :class:`skyhooks.StoreError`.
        Blocks only while ``max_pending`` submissions are unfinished.
        :meth:`close` waits for every submitted delivery to finish.
        """
        if _greenlets_as_threads():
            raise SkyhooksError(
                "Publisher.submit needs real threads, and gevent has patched threading: "
                "use skyhooks.gevent.Publisher, whose notify blocks only the calling greenlet"
            )
        encoded = self._signer.encode(keys, data)  # bad input raises here, in the caller
        pending, submitted = self._pending, self._submitted
        pending.acquire()
        try:
            future = self._background.submit(encoded)
        except BaseException:
            pending.release()
            raise
        with self._submitted_lock:
            submitted.add(future)
        _UNFINISHED_AT_EXIT.add(self)

        def finished(done: Future[DeliveryReport]) -> None:
            with self._submitted_lock:
                submitted.discard(done)
            pending.release()

        future.add_done_callback(finished)
        return future

    def close(self) -> None:
        """Wait for what was submitted, then close pooled connections and worker
        threads (and the store, if opened here)."""
        self._finish_submitted(None)
        _UNFINISHED_AT_EXIT.discard(self)
        self._background.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._http.close()
        super().close()

    def _finish_submitted(self, timeout: float | None) -> None:
        """Wait for every unfinished submission (their outcomes are the submitters' to read)."""
        with self._submitted_lock:
            unfinished = list(self._submitted)
        if unfinished:
            concurrent.futures.wait(unfinished, timeout)

    def _loop_publisher(self) -> Any:
        from ._asyncio_publisher import AsyncioPublisher

        secret, options = self._loop_args
        return AsyncioPublisher(self.store, secret, **options)

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any], limit: int) -> list[Any]:
        # The pool has `concurrency` threads; Gather's limit is that same number.
        return list(self._pool().map(fn, items))

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="skyhooks-publish")
            return self._executor

    def _send(self, send: Send) -> HTTPResult:
        return self._http.post(send.url, send.headers, send.body, send.timeout)


class _Crowd:
    """Messages of ``notify`` calls made while the inline ones are busy: they queue,
    and the queued calls' threads deliver the queue, ``most`` deliveries at a
    time, each taking everything queued when it starts as one notification and
    waking each other caller in it with its own report.

    A thread leads at most one delivery, the one its own message is in: when it
    is done and more has queued meanwhile, the first of those callers is woken
    to deliver them, so under a steady crowd no caller waits for more than one
    delivery before its own. Thread-safe; greenlets too where ``threading`` is
    patched.
    """

    def __init__(
        self, deliver: Callable[[Sequence[EncodedMessage]], list[DeliveryReport]], most: int = 2
    ) -> None:
        self._deliver, self._most = deliver, most
        self._lock = threading.Lock()
        self._queue: list[tuple[EncodedMessage, _Waiter]] = []
        self._leading = 0
        # Callers interrupted while waiting (their messages still go with their batch).
        self._abandoned: weakref.WeakSet[_Waiter] = weakref.WeakSet()

    def notify(self, message: EncodedMessage) -> DeliveryReport:
        waiter = _Waiter()
        batch = None
        with self._lock:
            # Taken under the lock that queued it: no other delivery can take it.
            self._queue.append((message, waiter))
            if self._leading < self._most:
                self._leading += 1
                batch, self._queue = self._queue, []
        if batch is not None:
            outcome = self._lead(batch, waiter)
        else:
            try:
                outcome = waiter.wait()
            except BaseException:  # interrupted while waiting (KeyboardInterrupt)
                self._abandon(waiter)
                raise
            if outcome[0] is _LEAD:  # woken to deliver what queued behind a delivery
                outcome = self._lead(outcome[1], waiter)
        report, error = outcome
        if error is not None:
            raise error
        return report  # type: ignore[no-any-return]

    def _lead(self, batch: list[tuple[EncodedMessage, _Waiter]], own: _Waiter) -> tuple[Any, Any]:
        mine: tuple[Any, Any] = (None, None)
        try:
            reports = self._deliver([message for message, _ in batch])
        except BaseException as exc:
            # Each caller raises it, as its own delivery would have; an interruption
            # of this thread (KeyboardInterrupt) is this thread's, and the others
            # get an error that says what happened to their message.
            shared = exc if isinstance(exc, Exception) else SkyhooksError(f"delivery interrupted: {exc!r}")
            for _, waiter in batch:
                if waiter is own:
                    mine = (None, exc)
                else:
                    waiter.resolve((None, shared))
        else:
            for (_, waiter), report in zip(batch, reports, strict=True):
                if waiter is own:
                    mine = (report, None)
                else:
                    waiter.resolve((report, None))
        finally:
            with self._lock:
                following, self._queue = self._queue, []
                self._pass_turn(following)
        return mine

    def _pass_turn(self, batch: list[tuple[EncodedMessage, _Waiter]]) -> None:
        # With the lock held: this delivery's turn goes to the first caller of
        # *batch* still waiting, who delivers it; with none, the turn ends.
        for _, waiter in batch:
            if waiter not in self._abandoned:
                waiter.resolve((_LEAD, batch))
                return
        self._leading -= 1

    def _abandon(self, waiter: _Waiter) -> None:
        # A caller that stops waiting must not take a turn with it: one already
        # passed to it goes on to the next caller of its batch.
        with self._lock:
            self._abandoned.add(waiter)
            handed = waiter.peek()
            if handed is not None and handed[0] is _LEAD:
                self._pass_turn(handed[1])


_LEAD: Any = object()  # (_LEAD, batch): what a queued call is woken with to deliver *batch*


async def _deliver(publisher: Any, messages: Sequence[EncodedMessage]) -> list[DeliveryReport]:
    # What was submitted while the loop was busy goes as one notification: one
    # lookup, one POST per instance, a report per message (see _background).
    return await run_async(publisher._flow_of(messages), publisher._perform)


def _close_loop_publisher(publisher: Any) -> None:
    publisher.close()


#: Publishers with submissions, finished before the interpreter exits: the loop
#: thread is a daemon (it must not keep a program alive), so a script that
#: submits and ends without close() would otherwise lose what was in flight.
_UNFINISHED_AT_EXIT: weakref.WeakSet[Publisher] = weakref.WeakSet()


@atexit.register
def _finish_at_exit() -> None:
    for publisher in list(_UNFINISHED_AT_EXIT):
        # Each delivery ends within its retry deadline; allow that, plus a timeout.
        publisher._finish_submitted(publisher.retry.deadline + publisher.retry.timeout)


def _greenlets_as_threads() -> bool:
    """Whether gevent has monkey-patched threading (its threads are greenlets)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))
