"""The whole notification: look up, fan out, prune, report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from ..keys import Topic
from ..values import DeliveryReport
from ..wire import EncodedMessage, OutgoingMessage, Signer
from .batches import split
from .coalescer import Coalescer
from .effects import Call, Flow, Gather
from .retry import DeliveryOutcome, RetryPolicy, counts_of, deliver

__all__ = ["Targets", "notify_flow"]

log = logging.getLogger("skyhooks.publisher")


class Targets(Protocol):
    """What a notification needs of a store (a :class:`~skyhooks.core.interfaces.HookStore`
    is one, and so is a publisher's lookup cache in front of one)."""

    def lookup(self, topics: frozenset[Topic]) -> Mapping[str, frozenset[Topic]]: ...
    def lookup_nowait(self, topics: frozenset[Topic]) -> Mapping[str, frozenset[Topic]]: ...
    def remove_url(self, url: str) -> int: ...
    def remove(self, url: str, topics: Iterable[Topic]) -> None: ...


def notify_flow(
    store: Targets,
    messages: Sequence[EncodedMessage],
    signer: Signer,
    policy: RetryPolicy,
    concurrency: int,
    url_filter: Callable[[str], str | None] | None = None,
    coalescer: Coalescer | None = None,
) -> Flow[list[DeliveryReport]]:
    """Look up, fan out, prune, report: one report per message, in order.

    One store lookup serves all *messages*; each URL gets one POST: the
    message itself (wire v1) when only one is addressed to it, else a batch.
    With a *coalescer*, a URL that already has its fill of POSTs in flight gets
    the messages with the next batch instead (see :mod:`.coalescer`).
    A store that cannot be read raises :class:`StoreError` out of the flow
    before anything is sent. Pruning failures are logged, and the URL is then
    simply not reported as pruned: the delivery outcome stands either way.
    ``url_filter(url)`` may refuse a URL by returning a reason.
    """
    single = len(messages) == 1
    wanted = messages[0].topics if single else frozenset().union(*(m.topics for m in messages))
    targets: Mapping[str, frozenset[Topic]] = yield Call(store.lookup, (wanted,), store.lookup_nowait)
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
        for part in split(indexes, messages)
    ]
    flows = [
        coalescer.deliver(url, [messages[i] for i in part], request_for, policy)
        if coalescer is not None
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


def _alone(
    url: str, request: OutgoingMessage, policy: RetryPolicy, sent: int
) -> Flow[list[tuple[DeliveryOutcome, int | None]]]:
    """One POST of its own (no coalescing): per message, the outcome and its count."""
    outcome = yield from deliver(url, request, policy)
    return [(outcome, n) for n in (counts_of(outcome, sent) if outcome.delivered else [0] * sent)]


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
