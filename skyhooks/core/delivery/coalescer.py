"""Coalescing: messages for a busy instance travel together in its next POST.

An HTTP request costs an instance's server a few hundred microseconds whatever it
carries, so one POST per message caps delivery at a few thousand messages a
second per instance. A publisher therefore keeps at most ``limit`` POSTs in
flight to each URL (its *lane*); a message for a URL whose lane is full waits in
the lane's queue, and when a POST finishes, everything queued leaves as one
batch (the wire's batch extension, ``docs/protocol.md``). When the
lane has room a message goes at once, alone, exactly as without coalescing: the
batching costs no latency at low rates and appears only under load, the way a
database's group commit does.

The sender of the next batch is one of the waiting callers (it is handed the
lead), not a background task: there is nothing to start or stop, each
publisher only supplies a waiter (:meth:`~skyhooks.core.BasePublisher._new_waiter`),
and the work of sending is spread over the callers that wait for it.

Everything here runs inside delivery flows (see :mod:`.effects`), so every
publisher shares it: it is skyhooks' one coalescer. A lock guards the lanes for the blocking
publisher's threads; it is never held across a ``yield``.

A publisher that queues whole messages rather than waiting for each one
(``Publisher.submit``) puts a :class:`Backlog` in front: what queues while a
notification runs leaves as the next one, with one lookup for all of it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..forks import reset_in_child
from ..values import DeliveryReport
from ..wire import MAX_BATCH, EncodedMessage, OutgoingMessage
from .batches import BATCH_BYTES, weight
from .effects import Flow, Wait
from .retry import DeliveryOutcome, RetryPolicy, counts_of, deliver

__all__ = ["Backlog", "Coalescer"]

#: What one caller gets back: per message it handed in, the outcome of the POST
#: that carried it and the callbacks it ran there (None for a duplicate).
Results = list[tuple[DeliveryOutcome, "int | None"]]

_LEAD = object()  # a waiter resolved with this sends the next batch


@dataclass(eq=False)
class _Ticket:
    """One caller's messages for one URL."""

    messages: Sequence[EncodedMessage]
    resolve: Callable[[Any], None] | None = None
    #: queued -> lead (handed a batch to send) or done (results delivered)
    state: str = "queued"
    batch: list[_Ticket] = field(default_factory=list)


@dataclass(eq=False)
class _Lane:
    sending: int = 0
    queue: deque[_Ticket] = field(default_factory=deque)


class Coalescer:
    """Per-URL lanes of at most *limit* POSTs in flight (see the module docs).

    ``linger()``, if given, returns a waiter (as *new_waiter*'s) or None. A lead
    waits for it before sending, then takes along what queued meanwhile. For a
    publisher whose waiters fire at once, in order (Twisted's): when a POST
    ends, the next lead's waiter and the batch's callers are resolved together,
    and a waiter resolved after them lets the lead take the messages those
    callers send next, which would otherwise make a POST of their own.
    """

    def __init__(
        self,
        limit: int,
        new_waiter: Callable[[], tuple[Any, Callable[[Any], None]]],
        linger: Callable[[], Any] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._new_waiter = new_waiter
        self._linger = linger
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()
        reset_in_child(self)

    def _after_fork(self) -> None:
        # A forked child has none of its parent's POSTs in flight: counted as
        # sending, they would hold its lanes full for ever.
        self._lanes = {}
        self._lock = threading.Lock()

    def deliver(
        self,
        url: str,
        messages: Sequence[EncodedMessage],
        request_for: Callable[[Sequence[EncodedMessage]], OutgoingMessage],
        policy: RetryPolicy,
    ) -> Flow[Results]:
        """Deliver *messages* to *url*, alone or with others queued for it; never raises
        (but for the caller's own cancellation)."""
        ticket = _Ticket(messages)
        with self._lock:
            lane = self._lanes.get(url)
            if lane is None:
                lane = self._lanes[url] = _Lane()
            if lane.sending < self.limit:
                lane.sending += 1
                ticket.state, ticket.batch = "lead", [ticket]
            else:
                waiter, ticket.resolve = self._new_waiter()
                lane.queue.append(ticket)
        if ticket.state == "queued":
            try:
                answer = yield Wait(waiter)
            except BaseException:
                self._abandon(url, lane, ticket)
                raise
            if answer is not _LEAD:
                return answer  # type: ignore[no-any-return]
        lingering = self._linger() if self._linger is not None else None
        if lingering is not None:
            try:
                yield Wait(lingering)
            except BaseException:
                self._abandon(url, lane, ticket)
                raise
            with self._lock:
                self._take_queued(lane, ticket.batch)
        return (yield from self._send(url, lane, ticket, request_for, policy))

    def _send(
        self,
        url: str,
        lane: _Lane,
        ticket: _Ticket,
        request_for: Callable[[Sequence[EncodedMessage]], OutgoingMessage],
        policy: RetryPolicy,
    ) -> Flow[Results]:
        batch = ticket.batch
        messages = [m for t in batch for m in t.messages]
        try:
            outcome = yield from deliver(url, request_for(messages), policy)
        except BaseException:
            # Our caller is gone mid-POST (cancelled), or building the request
            # failed: never leave the others waiting. Their messages go again
            # with the next batch: same ids, so an instance that got them
            # already drops them as duplicates.
            self._abandon(url, lane, ticket)
            raise
        counts = counts_of(outcome, len(messages)) if outcome.delivered else [0] * len(messages)
        results: list[Results] = []
        at = 0
        for member in batch:
            results.append([(outcome, n) for n in counts[at : at + len(member.messages)]])
            at += len(member.messages)
        with self._lock:
            handoff = self._next_lead(url, lane)
        if handoff is not None:
            handoff()  # first: the lane's next POST leaves while the others read their results
        for member, result in zip(batch, results, strict=True):
            if member is not ticket:
                member.state = "done"
                assert member.resolve is not None
                member.resolve(result)
        return results[batch.index(ticket)]

    def _next_lead(self, url: str, lane: _Lane) -> Callable[[], None] | None:
        """With the lock held, after a POST or an abandoned lead: hand the queued
        messages to one of their callers to send, or free the POST's place."""
        if not lane.queue:
            lane.sending -= 1
            if not lane.sending and self._lanes.get(url) is lane:
                del self._lanes[url]
            return None
        batch = [lane.queue.popleft()]
        self._take_queued(lane, batch)
        lead = batch[0]
        lead.state, lead.batch = "lead", batch
        resolve = lead.resolve
        assert resolve is not None
        return lambda: resolve(_LEAD)

    @staticmethod
    def _take_queued(lane: _Lane, batch: list[_Ticket]) -> None:
        """With the lock held: move queued tickets into *batch* while it stays within a batch's bounds."""
        size = sum(weight(t.messages) for t in batch)
        count = sum(len(t.messages) for t in batch)
        while lane.queue:
            following = lane.queue[0]
            more = weight(following.messages)
            if count + len(following.messages) > MAX_BATCH or size + more > BATCH_BYTES:
                break
            batch.append(lane.queue.popleft())
            size, count = size + more, count + len(following.messages)

    def _abandon(self, url: str, lane: _Lane, ticket: _Ticket) -> None:
        """*ticket*'s caller stopped waiting (cancelled, killed): keep the lane moving."""
        handoff = None
        with self._lock:
            if ticket.state == "queued":
                if ticket in lane.queue:
                    lane.queue.remove(ticket)  # nothing of it was sent; its caller is gone
                return
            if ticket.state != "lead":
                return  # its results had arrived: nothing depends on it
            ticket.state = "done"
            others = [t for t in ticket.batch if t is not ticket]
            for other in reversed(others):
                other.state = "queued"
                lane.queue.appendleft(other)
            handoff = self._next_lead(url, lane)
        if handoff is not None:
            handoff()


class Backlog:
    """The coalescer's first stage, for a publisher that queues whole messages
    (``Publisher.submit``): each :meth:`put` returns a
    ``concurrent.futures.Future`` of the message's report, and what is queued
    while up to *most* drains run leaves as one notification (one store
    lookup, then the lanes above), up to *size* messages at a time. At low
    rates a drain takes one message, at once.

    Framework-free: ``start(drain)`` runs ``drain()`` wherever the publisher runs
    work (a worker thread), or raises ``RuntimeError`` when it takes no more work
    (an executor shut down at exit: then the caller drains, here);
    ``deliver(messages)`` is the notification, returning a report per message.
    Thread-safe.
    """

    def __init__(
        self,
        start: Callable[[Callable[[], None]], object],
        deliver: Callable[[list[EncodedMessage]], list[DeliveryReport]],
        most: int = 2,
        size: int = MAX_BATCH,
    ) -> None:
        self._start, self._deliver = start, deliver
        self.most, self.size = most, size
        self._after_fork()
        reset_in_child(self)

    def _after_fork(self) -> None:
        # A forked child has none of its parent's drains running, nor its queue's owners.
        self._lock = threading.Lock()
        self._queue: deque[tuple[EncodedMessage, Future[DeliveryReport]]] = deque()
        self._draining = 0

    def put(self, message: EncodedMessage) -> Future[DeliveryReport]:
        """Queue *message*; the future of its report."""
        future: Future[DeliveryReport] = Future()
        with self._lock:
            self._queue.append((message, future))
            must_start = self._draining < self.most
            self._draining += must_start
        if must_start:
            try:
                self._start(self._drain)
            except RuntimeError:  # no more work taken (the interpreter is exiting): drain here
                self._drain()
        return future

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._draining -= 1
                    return
                take = min(self.size, len(self._queue))
                group = [self._queue.popleft() for _ in range(take)]
            self._settle(group)

    def _settle(self, group: list[tuple[EncodedMessage, Future[DeliveryReport]]]) -> None:
        live = [(message, future) for message, future in group if future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            reports = self._deliver([message for message, _ in live])
        except BaseException as exc:  # a store error, say: each submitter reads it from its future
            for _, future in live:
                future.set_exception(exc)
        else:
            for (_, future), report in zip(live, reports, strict=True):
                future.set_result(report)

    def __len__(self) -> int:
        return len(self._queue)
