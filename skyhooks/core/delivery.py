"""Delivering one message to many instances: planning, retries, pruning, the report.

All of it is written once, here, as generator *flows* that yield effects
(:class:`Send`, :class:`Sleep`, :class:`Call`, :class:`Gather`) and receive
their results, in the sans-IO manner. Each publisher (blocking, Tornado,
gevent, Twisted) supplies only ``perform(effect)`` in its own idiom and runs
the flow with :func:`run_sync` or :func:`run_async`. The retry policy, the
pruning rules and the report therefore cannot drift between frameworks.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import TransportError
from .keys import Topic
from .protocol import MAX_BATCH, EncodedMessage, OutgoingMessage, Signer, parse_reply
from .values import DeliveryReport

if TYPE_CHECKING:
    from .lanes import Lanes

__all__ = [
    "Call",
    "DeliveryOutcome",
    "Effect",
    "Flow",
    "Gather",
    "HTTPResult",
    "RetryPolicy",
    "Send",
    "Sleep",
    "Wait",
    "deliver",
    "notify_flow",
    "run_async",
    "run_sync",
]

log = logging.getLogger("skyhooks.publisher")

T = TypeVar("T")


# -- effects -------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """POST ``body`` with ``headers`` to ``url``; the result is an :class:`HTTPResult`.
    Failures below HTTP must be raised as :class:`TransportError`."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    timeout: float


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` without blocking other work; the result is ignored."""

    seconds: float


@dataclass(frozen=True)
class Call:
    """Run the blocking ``fn(*args)`` (a store call) off the event loop; the
    result is its return value, or its exception thrown back into the flow.

    ``nowait``, if given, answers the same without ever waiting, or raises
    :class:`~skyhooks.core.errors.WouldBlock`: an event loop may try it in
    place before handing ``fn`` to a thread."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    nowait: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Gather:
    """Run ``flows`` concurrently, at most ``limit`` at a time; the result is the
    list of their return values, in order. Flows must not raise."""

    flows: Sequence[Generator[Any, Any, Any]]
    limit: int


@dataclass(frozen=True)
class Wait:
    """Wait until *waiter* (made by the publisher's ``_new_waiter``) is resolved;
    the result is the value it was resolved with. Used by coalescing lanes."""

    waiter: Any


Effect = Send | Sleep | Call | Gather | Wait
Flow = Generator[Effect, Any, T]


@dataclass(frozen=True)
class HTTPResult:
    status: int
    headers: Mapping[str, str]
    body: bytes


# -- drivers -------------------------------------------------------------------


def run_sync(flow: Flow[T], perform: Callable[[Effect], Any]) -> T:
    """Drive *flow* to completion with a blocking ``perform``."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = perform(effect), None
        except Exception as exc:
            value, error = None, exc
        except BaseException:
            flow.close()  # runs the flow's cleanups now (lanes hand on their work)
            raise


async def run_async(flow: Flow[T], perform: Callable[[Effect], Awaitable[Any]]) -> T:
    """Drive *flow* to completion with a ``perform`` that returns awaitables
    (asyncio futures under Tornado, Deferreds under Twisted)."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = await perform(effect), None
        except Exception as exc:
            value, error = None, exc
        except BaseException:  # cancelled: let the flow clean up before we go
            flow.close()
            raise


# -- the retry policy ------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry one URL.

    Connection failures, timeouts, 408, 429 and 5xx are retried, up to
    ``attempts`` tries in all, with exponential backoff (``backoff`` doubling up
    to ``max_backoff``) and full jitter, never past ``deadline`` seconds after
    the first try. A 429 or 503 with ``Retry-After`` waits what it asks, if that
    fits in the deadline. Other 4xx are final at once. ``timeout`` bounds each
    attempt (connect and response).
    """

    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 2.0
    deadline: float = 10.0
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.backoff, self.max_backoff, self.deadline, self.timeout) <= 0:
            raise ValueError("backoff, max_backoff, deadline and timeout must be positive")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed try number *attempt* (1-based)."""
        exponential: float = self.backoff * 2.0 ** (attempt - 1)
        return rand() * min(self.max_backoff, exponential)


RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
#: After its retries, a URL answering these (or refusing connections) is gone: prune it.
GONE_STATUSES = frozenset({404, 410})


@dataclass(frozen=True)
class DeliveryOutcome:
    """How delivering to one URL ended."""

    url: str
    delivered: bool
    notified: int = 0
    duplicate: bool = False
    reason: str = ""
    gone: bool = False
    #: for a batch: per message, its count or None for a duplicate (see parse_reply)
    results: tuple[int | None, ...] | None = None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return None if when is None else max(0.0, when.timestamp() - time.time())


def deliver(
    url: str,
    message: OutgoingMessage,
    policy: RetryPolicy,
    clock: Callable[[], float] = time.monotonic,
) -> Flow[DeliveryOutcome]:
    """POST *message* to *url*, retrying as *policy* says; never raises."""
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        remaining = policy.deadline - (clock() - started)
        wait: float | None = None
        try:
            result = yield Send(
                url, message.headers, message.body, min(policy.timeout, max(remaining, 0.001))
            )
        except TransportError as exc:
            reason, retry, gone = f"{exc.kind}: {exc.detail}", True, exc.kind == "refused"
        except Exception as exc:  # an adapter bug must not lose the message silently
            log.exception("unexpected error sending %s to %s", message.id, url)
            reason, retry, gone = f"error: {exc!r}", False, False
        else:
            if 200 <= result.status < 300:
                reply = parse_reply(result.body)
                return DeliveryOutcome(url, True, reply.notified, reply.duplicate, results=reply.results)
            reason = f"HTTP {result.status}"
            retry = result.status in RETRY_STATUSES
            gone = result.status in GONE_STATUSES
            if result.status in (429, 503):
                wait = _retry_after(result.headers)
        if not retry or attempt >= policy.attempts:
            break
        wait = policy.delay(attempt) if wait is None else wait
        if clock() - started + wait >= policy.deadline:
            reason += " (deadline reached)"
            break
        yield Sleep(wait)
    tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
    return DeliveryOutcome(url, False, reason=f"{reason} after {tries}", gone=gone)


# -- the whole notification ------------------------------------------------------


def notify_flow(
    store: Any,
    messages: Sequence[EncodedMessage],
    signer: Signer,
    policy: RetryPolicy,
    concurrency: int,
    url_filter: Callable[[str], str | None] | None = None,
    lanes: Lanes | None = None,
) -> Flow[list[DeliveryReport]]:
    """Look up, fan out, prune, report: one report per message, in order.

    One store lookup serves all *messages*; each URL gets one POST: the
    message itself (wire v1) when only one is addressed to it, else a batch.
    With *lanes*, a URL that already has its fill of POSTs in flight gets the
    messages with the next batch instead (see :mod:`skyhooks.core.lanes`).
    A store that cannot be read raises :class:`StoreError` out of the flow
    before anything is sent. Pruning failures are logged, and the URL is then
    simply not reported as pruned: the delivery outcome stands either way.
    ``url_filter(url)`` may refuse a URL by returning a reason.
    """
    single = len(messages) == 1
    wanted = messages[0].topics if single else frozenset().union(*(m.topics for m in messages))
    targets: Mapping[str, frozenset[Topic]] = yield Call(
        store.lookup, (wanted,), getattr(store, "lookup_nowait", None)
    )
    if not targets:  # nobody listens: nothing to send, prune or drop
        return [DeliveryReport(message_id=m.id) for m in messages]
    routes: dict[str, list[int]]  # url -> indexes of the messages it gets
    if single:  # the common case: every URL found listens for it
        routes = dict.fromkeys(targets, _ONLY)
    else:
        routes = {
            url: [i for i, m in enumerate(messages) if m.topics & matched] for url, matched in targets.items()
        }
    refused: dict[str, str] = {}
    if url_filter is not None:
        for url in routes:
            reason = url_filter(url)
            if reason:
                refused[url] = reason
    singles: dict[str, OutgoingMessage] = {}

    def request_for(carried: Sequence[EncodedMessage]) -> OutgoingMessage:
        if len(carried) > 1:
            return signer.build_batch(carried)
        one = carried[0]
        if one.id not in singles:  # one signature per message, however many URLs get it
            singles[one.id] = signer.sign(one)
        return singles[one.id]

    # One POST per URL, unless its messages would make a batch too big for a receiver.
    posts = [
        (url, part)
        for url, indexes in routes.items()
        if url not in refused
        for part in _batches(indexes, messages)
    ]
    flows = [
        lanes.deliver(url, [messages[i] for i in part], request_for, policy)
        if lanes is not None
        else _alone(url, request_for([messages[i] for i in part]), policy, len(part))
        for url, part in posts
    ]
    results: list[list[tuple[DeliveryOutcome, int | None]]]
    if len(flows) == 1:  # one instance, the usual case: its flow inline, no fan-out to set up
        results = [(yield from flows[0])]
    else:
        results = (yield Gather(flows, concurrency)) if flows else []
    # per (url, message index): the outcome of the POST that carried it, and its count;
    # and, in the same pass, the URLs found gone and those that took a message idly
    carried: dict[tuple[str, int], tuple[DeliveryOutcome, int | None]] = {}
    gone: dict[str, str] = {}  # url -> why
    idle: set[str] = set()
    for (url, part), result in zip(posts, results, strict=True):
        for i, got in zip(part, result, strict=True):
            carried[url, i] = got
            outcome = got[0]
            if outcome.delivered:
                if got[1] == 0:
                    idle.add(url)
            elif outcome.gone and url not in gone:
                gone[url] = outcome.reason

    pruned = set()
    for url, why in gone.items():
        try:
            yield Call(store.remove_url, (url,))
        except Exception as exc:
            log.warning("could not prune dead %s: %s", url, exc)
        else:
            log.info("pruned %s: %s", url, why)
            pruned.add(url)
    for url in idle - pruned:
        taken = [(messages[i].topics, got[1]) for i in routes[url] if (got := carried[url, i])[0].delivered]
        unused = _unused_topics(targets[url], taken)
        if unused:
            # The instance has no callback for these topics any more (it missed an
            # unregister write, say): stop sending it this traffic.
            try:
                yield Call(store.remove, (url, unused))
            except Exception as exc:
                log.warning("could not drop %s's unused topics: %s", url, exc)
            else:
                log.info("dropped topics %s of %s: nobody listens there", _names(unused), url)

    addressed: list[list[str]]  # per message, the URLs it went to
    if single:
        addressed = [list(routes)]
    else:
        addressed = [[] for _ in messages]
        for url, indexes in routes.items():
            for i in indexes:
                addressed[i].append(url)
    reports = []
    for index, message in enumerate(messages):
        urls = addressed[index]
        failed = {}
        delivered = []
        notified = 0
        for url in urls:
            if url in refused:
                failed[url] = refused[url]
                continue
            outcome, count = carried[url, index]
            if outcome.delivered:
                delivered.append(url)
                notified += count or 0
            else:
                failed[url] = outcome.reason
        reports.append(
            DeliveryReport(
                message_id=message.id,
                urls=frozenset(urls),
                delivered=frozenset(delivered),
                failed=failed,
                notified=notified,
                pruned=frozenset(pruned.intersection(urls)) if pruned else _NONE,
            )
        )
    return reports


_ONLY = [0]  # the routes of a single message: shared, never changed
_NONE: frozenset[str] = frozenset()


#: A batch stays under this many bytes, well inside a receiver's default 1 MiB limit.
BATCH_BYTES = 512 * 1024


def weight(messages: Iterable[EncodedMessage]) -> int:
    """About how many bytes *messages* take in a batch."""
    return sum(len(m.fields) + len(m.id) + 16 for m in messages)


def _batches(indexes: list[int], messages: Sequence[EncodedMessage]) -> list[list[int]]:
    """Split one URL's messages into batches of at most MAX_BATCH messages and
    about BATCH_BYTES; a message bigger than that travels alone."""
    if len(indexes) == 1:
        return [indexes]
    batches: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i in indexes:
        more = weight((messages[i],))
        if current and (len(current) >= MAX_BATCH or size + more > BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(i)
        size += more
    if current:
        batches.append(current)
    return batches


def _alone(
    url: str, request: OutgoingMessage, policy: RetryPolicy, sent: int
) -> Flow[list[tuple[DeliveryOutcome, int | None]]]:
    """One POST of its own (no lanes): per message, the outcome and its count."""
    outcome = yield from deliver(url, request, policy)
    return [(outcome, n) for n in (counts_of(outcome, sent) if outcome.delivered else [0] * sent)]


def counts_of(outcome: DeliveryOutcome, sent: int) -> list[int | None]:
    """Callbacks run per message sent to one URL; None for a duplicate."""
    if sent == 1:
        return [None if outcome.duplicate else outcome.notified]
    if outcome.results is None or len(outcome.results) != sent:
        return [1] * sent  # a receiver that does not say: count it as delivered, never as unused
    return list(outcome.results)


def _unused_topics(
    subscribed: frozenset[Topic], taken: list[tuple[frozenset[Topic], int | None]]
) -> frozenset[Topic]:
    """The URL's topics that only carried messages nobody took (count 0, not duplicates)."""
    idle: set[Topic] = set()
    used: set[Topic] = set()
    for topics, count in taken:
        (idle if count == 0 else used).update(topics & subscribed)
    return frozenset(idle - used)


def _names(topics: Iterable[Topic]) -> str:
    return ", ".join(sorted(map(str, topics)))
